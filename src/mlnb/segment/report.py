"""Every (arm, fold)'s held-out metrics in one report: does augmentation help, and by how much?

Per arm: the mean ± sd of Dice and HD95 over every held-out case (each case is held out once per arm),
and the mean ± sd of the fold means; per arm but ``none``: the mean paired difference to ``none`` over the
same cases, with a 95 % bootstrap confidence interval (cases resampled with replacement, from
(seed, "segment", "bootstrap", arm)). Figures: Dice per case per arm, and overlays (image, truth, each
arm's prediction) of the best and the worst case (by mean Dice over the arms). nnU-Net's 0.93 (a 5-fold
ensemble on the MSD test set, ~13 h per fold on an A100) stands beside them as context.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mlnb import tracking
from mlnb.errors import DataError
from mlnb.io import atomic_path
from mlnb.rng import generator
from mlnb.segment.overlay import overlay_panels
from mlnb.segment.preprocess import Source, load_volume, to_internal
from mlnb.segment.settings import ARMS

NNUNET_DICE = 0.93
BOOTSTRAP_SAMPLES = 10_000
BASELINE = "none"
METRICS = ("dice", "hd95")
#: the figures the report writes into its figures folder
REPORT_FIGURES = ("dice_per_case.png", "best_case.png", "worst_case.png")


def load_runs(paths: Sequence[Path]) -> dict[str, dict[int, dict[str, Any]]]:
    """{arm: {fold: metrics}} from the metrics.json files; each case held out once per arm."""
    runs: dict[str, dict[int, dict[str, Any]]] = {}
    for path in paths:
        try:
            metrics = json.loads(Path(path).read_text())
            arm, fold = metrics["arm"], int(metrics["fold"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise DataError(f"{path}: not a readable segmentation metrics file ({error})") from None
        if fold in runs.setdefault(arm, {}):
            raise DataError(f"{path}: arm {arm} fold {fold} is given twice")
        runs[arm][fold] = metrics
    for arm, folds in runs.items():
        cases = [case for metrics in folds.values() for case in metrics["cases"]]
        if len(cases) != len(set(cases)):
            raise DataError(f"arm {arm}: a case is held out in two folds ({sorted(cases)})")
    return runs


def per_case(folds: dict[int, dict[str, Any]], metric: str) -> dict[str, float]:
    return {case: values[metric] for metrics in folds.values() for case, values in metrics["cases"].items()}


def bootstrap_interval(differences: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of the mean of ``differences`` resampled with replacement."""
    picks = rng.integers(0, len(differences), size=(BOOTSTRAP_SAMPLES, len(differences)))
    low, high = np.percentile(differences[picks].mean(axis=1), (2.5, 97.5))
    return float(low), float(high)


def summarise(runs: dict[str, dict[int, dict[str, Any]]], seed: int) -> dict[str, dict[str, Any]]:
    """Per arm (in the config's order of arms): counts, means, sds, fold means and the paired differences."""
    summary = {}
    for arm in sorted(runs, key=lambda name: ARMS.index(name) if name in ARMS else len(ARMS)):
        folds = runs[arm]
        row: dict[str, Any] = {"folds": len(folds), "cases": len(per_case(folds, "dice"))}
        for metric in METRICS:
            values = np.array(list(per_case(folds, metric).values()))
            fold_means = np.array([metrics[metric] for metrics in folds.values()])
            row[metric] = {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                           "fold_mean": float(fold_means.mean()),
                           "fold_sd": float(fold_means.std(ddof=1)) if len(fold_means) > 1 else 0.0}
            if arm != BASELINE and BASELINE in runs:
                mine, theirs = per_case(folds, metric), per_case(runs[BASELINE], metric)
                common = sorted(set(mine) & set(theirs))
                if common:
                    differences = np.array([mine[case] - theirs[case] for case in common])
                    interval = bootstrap_interval(differences, generator(seed, "segment", "bootstrap", arm, metric))
                    row[metric]["versus_none"] = {"mean": float(differences.mean()), "low": interval[0],
                                                  "high": interval[1], "cases": len(common)}
        summary[arm] = row
    return summary


def _plus_minus(values: dict[str, float], mean: str, sd: str, digits: int) -> str:
    return f"{values[mean]:.{digits}f} ± {values[sd]:.{digits}f}"


def _difference(values: dict[str, Any], digits: int) -> str:
    versus = values.get("versus_none")
    if versus is None:
        return "—"
    return f"{versus['mean']:+.{digits}f} [{versus['low']:+.{digits}f}, {versus['high']:+.{digits}f}]"


def markdown(summary: dict[str, dict[str, Any]], figures: dict[str, str]) -> str:
    lines = ["# Heart segmentation: does augmentation help?", "",
             "Held-out cases of a k-fold cross-validation, every arm trained with the same network, initial "
             "weights, steps and patch draws; only the augmentation differs. Dice (higher is better) and HD95 "
             "in mm (lower is better), mean ± sd over the held-out cases, and over the folds' means. "
             "Δ: the mean paired difference to `none` over the same cases, with a 95 % bootstrap confidence "
             "interval; an interval that excludes 0 is a difference these cases support.", "",
             f"Context: nnU-Net reaches Dice {NNUNET_DICE:.2f} on the MSD heart test set (an ensemble of 5 folds, "
             "each trained ~13 h on an A100).", "",
             "| arm | folds | cases | Dice | Dice (folds) | Δ Dice vs none | HD95 (mm) | HD95 (folds) | "
             "Δ HD95 vs none |",
             "|---|---|---|---|---|---|---|---|---|"]
    for arm, row in summary.items():
        dice, distance = row["dice"], row["hd95"]
        lines.append(f"| {arm} | {row['folds']} | {row['cases']} | {_plus_minus(dice, 'mean', 'sd', 3)} | "
                     f"{_plus_minus(dice, 'fold_mean', 'fold_sd', 3)} | {_difference(dice, 3)} | "
                     f"{_plus_minus(distance, 'mean', 'sd', 2)} | {_plus_minus(distance, 'fold_mean', 'fold_sd', 2)} | "
                     f"{_difference(distance, 2)} |")
    lines.append("")
    for title, path in figures.items():
        lines += [f"## {title}", "", f"![{title}]({path})", ""]
    return "\n".join(lines)


def dice_plot(runs: dict[str, dict[int, dict[str, Any]]], arms: Sequence[str]) -> np.ndarray:
    """Dice per held-out case (sorted by the first arm's) per arm, as an RGB picture."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    scores = {arm: per_case(runs[arm], "dice") for arm in arms}
    cases = sorted(scores[arms[0]], key=scores[arms[0]].get)
    figure, axis = plt.subplots(figsize=(max(5.0, 0.45 * len(cases) + 2), 3.6), dpi=100)
    for arm in arms:
        axis.plot(range(len(cases)), [scores[arm].get(case, np.nan) for case in cases], marker="o", label=arm)
    axis.axhline(NNUNET_DICE, color="grey", linestyle="--", linewidth=1, label=f"nnU-Net {NNUNET_DICE}")
    axis.set_xticks(range(len(cases)), cases, rotation=60, fontsize=7)
    axis.set_ylabel("Dice")
    axis.set_ylim(0, 1)
    axis.legend(fontsize=7, ncol=min(len(arms) + 1, 4))
    figure.tight_layout()
    figure.canvas.draw()
    picture = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return picture


def case_overlay(runs: dict[str, dict[int, dict[str, Any]]], arms: Sequence[str], case: str,
                 caption: str) -> np.ndarray:
    """Image, truth and each arm's prediction of ``case``."""
    import nibabel as nib

    entry = next(metrics["cases"][case] for metrics in runs[arms[0]].values() if case in metrics["cases"])
    volume = load_volume(Source(case, case, Path(entry["image"]), Path(entry["label"])))
    predictions, titles = [], []
    for arm in arms:
        found = next(metrics["cases"][case] for metrics in runs[arm].values() if case in metrics["cases"])
        predictions.append(to_internal(np.asarray(nib.load(found["prediction"]).dataobj)))
        titles.append(f"{arm} ({found['dice']:.3f})")
    return overlay_panels(volume.image, [volume.labels, *predictions], ["truth", *titles], caption)


def save_png(picture: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(picture).save(tmp, format="PNG")


def write_report(paths: Sequence[Path], out: Path, figures: Path, seed: int,
                 tracking_options: tracking.TrackingOptions = tracking.TrackingOptions()) -> dict[str, Any]:
    """The report ``out`` and its figures in ``figures``, logged to an MLflow run "report-segment" when
    ``tracking_options`` name a store; the summary."""
    runs = load_runs(paths)
    summary = summarise(runs, seed)
    arms = list(summary)
    common = set.intersection(*(set(per_case(runs[arm], "dice")) for arm in arms))
    if not common:
        raise DataError("segmentation report: no case is held out by every arm")
    mean_dice = {case: float(np.mean([per_case(runs[arm], "dice")[case] for arm in arms])) for case in common}
    best, worst = max(sorted(mean_dice), key=mean_dice.get), min(sorted(mean_dice), key=mean_dice.get)
    pictures = {"Dice per case and arm": ("dice_per_case.png", dice_plot(runs, arms)),
                "Best case": ("best_case.png", case_overlay(runs, arms, best, f"best case {best}")),
                "Worst case": ("worst_case.png", case_overlay(runs, arms, worst, f"worst case {worst}"))}
    links = {}
    for title, (name, picture) in pictures.items():
        save_png(picture, figures / name)
        links[title] = Path(os.path.relpath(figures / name, out.parent)).as_posix()
    with atomic_path(out) as tmp:
        tmp.write_text(markdown(summary, links))
    with tracking.tracked_run(tracking_options, "report-segment",
                              params={"arms": arms, "runs": len(paths), "seed": seed}) as tracker:
        for arm, row in summary.items():
            tracker.log_metrics({f"{metric}_mean.{arm}": row[metric]["mean"] for metric in METRICS})
        tracker.log_artifact(out)
        for name, picture in pictures.values():
            tracker.log_image(picture, f"figures/{name}")
    return {"summary": summary, "best": best, "worst": worst}
