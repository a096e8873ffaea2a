"""The report: per arm mean ± sd over cases and folds, the paired difference to none with its bootstrap
interval, and its figures, logged to MLflow."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest

from mlnb import cli
from mlnb.segment.inference import write_prediction
from mlnb.segment.metrics import case_metrics
from mlnb.segment.report import bootstrap_interval
from tests.segment.cases import bars_and_blobs, write_case


def write_runs(root):
    """Arms none (misses a bar in every case) and onthefly (perfect), two folds of two cases each."""
    paths = []
    for arm in ("none", "onthefly"):
        for fold, cases in enumerate((["c0", "c1"], ["c2", "c3"])):
            measured = {}
            for case in cases:
                image, labels = bars_and_blobs(int(case[1]))
                image_path, label_path = write_case(root / "volumes", case, image, labels)
                predicted = labels.copy()
                if arm == "none":
                    predicted[:, :, : 8 + 4 * int(case[1])] = 0
                prediction = root / arm / f"fold{fold}" / f"{case}.nii.gz"
                write_prediction(predicted, image_path, prediction)
                measured[case] = {**case_metrics(predicted, labels, (2.0, 1.0, 1.0), [0, 1]),
                                  "prediction": str(prediction), "image": str(image_path), "label": str(label_path)}
            metrics = {"arm": arm, "fold": fold, "cases": measured,
                       **{key: float(np.mean([value[key] for value in measured.values()])) for key in ("dice", "hd95")}}
            paths.append(root / arm / f"fold{fold}" / "metrics.json")
            paths[-1].write_text(json.dumps(metrics))
    return paths


def test_the_report_compares_every_arm_with_none(tmp_path, mlflow_uri, capsys):
    paths = write_runs(tmp_path)
    out = tmp_path / "reports" / "segmentation.md"
    assert cli.main(["report-segment", *map(str, paths), "--out", str(out), "--figures",
                     str(tmp_path / "reports" / "segmentation"), "--seed", "1", "--tracking-uri", mlflow_uri,
                     "--experiment", "tests"]) == 0
    text = out.read_text()
    (none_row,) = [line for line in text.splitlines() if line.startswith("| none |")]
    (onthefly_row,) = [line for line in text.splitlines() if line.startswith("| onthefly |")]
    assert "| 2 | 4 | 1.000 ± 0.000 | 1.000 ± 0.000 | +" in onthefly_row and "| — |" in none_row
    assert "0.93" in text and "![Worst case](segmentation/worst_case.png)" in text
    for name in ("dice_per_case.png", "best_case.png", "worst_case.png"):
        assert (tmp_path / "reports" / "segmentation" / name).stat().st_size > 1000
    assert "mean Dice: none" in capsys.readouterr().out
    client = mlflow.MlflowClient(mlflow_uri)
    (found,) = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert found.data.metrics["dice_mean.onthefly"] == 1.0
    assert {entry.path for entry in client.list_artifacts(found.info.run_id)} >= {"segmentation.md", "figures"}


def test_bootstrap_intervals_hold_the_mean_and_a_case_held_out_twice_is_refused(tmp_path, caplog):
    low, high = bootstrap_interval(np.array([0.1, 0.2, 0.3, 0.2]), np.random.default_rng(0))
    assert low < 0.2 < high and low >= 0.1 and high <= 0.3
    paths = write_runs(tmp_path)
    twice = json.loads(paths[1].read_text())
    twice["fold"] = 5
    twice["cases"] = json.loads(paths[0].read_text())["cases"]
    paths[1].write_text(json.dumps(twice))
    assert cli.main(["report-segment", *map(str, paths), "--out", str(tmp_path / "r.md"), "--figures",
                     str(tmp_path / "f")]) == 2
    assert "arm none: a case is held out in two folds" in caplog.text


@pytest.mark.parametrize("broken", ["{", '{"fold": 0}'])
def test_unreadable_metrics_are_refused_naming_the_file(tmp_path, caplog, broken):
    path = tmp_path / "metrics.json"
    path.write_text(broken)
    assert cli.main(["report-segment", str(path), "--out", str(tmp_path / "r.md"), "--figures",
                     str(tmp_path / "f")]) == 2
    assert f"{path}: not a readable segmentation metrics file" in caplog.text
