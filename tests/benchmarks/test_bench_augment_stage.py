"""``mlnb augment`` as the pipeline runs it, per copy: the fused mode beside the sequential one (issue 19).

One heart-size case (a 320x320x110 int16 NIfTI image with a uint8 label map, MSD Task02_Heart's size and
voxel size; the MNI152 template resampled to it, with noise in the background as an MRI has), augmented
with config.yaml's ``augment`` settings passed as ``--settings`` as the workflow's rule does (224x224x112
output, previews of every copy), with ``--threads 1`` as config.yaml gives and with ``--threads 2`` (each
copy written while the next is computed), the same copies and seed in both modes, the runs interleaved.
Each copy's time is split into the phases the stage itself measures and logs (read with the inputs' md5,
engine, write, preview, record; "other" is the rest of the command's wall time: argument checks,
stale-copy cleanup, tracking), and the write is set beside gzip alone on the same output bytes (the level
nibabel writes .nii.gz with; the output format, so a floor, not overhead).

Run: .venv/bin/python -m pytest -s -m benchmark tests/benchmarks/test_bench_augment_stage.py
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlnb import cli

SHAPE = (320, 320, 110)
VOXEL_MM = (1.25, 1.25, 1.37)
ROUNDS = 2
OPERATIONAL_KEYS = ("threads",)  # reach the command as flags, not in --settings (workflow/rules/common.smk)
REPOSITORY = Path(__file__).resolve().parents[2]


def heart_size_case(folder: Path) -> tuple[Path, Path]:
    """The MNI152 template and its tissue labels resampled to SHAPE (linear / nearest), noise added."""
    import nibabel as nib
    from scipy import ndimage

    from mlnb.demo.heart import INTENSITY_SCALE, mni_volume_and_labels

    template, labels, _, _ = mni_volume_and_labels()
    factors = [out / size for out, size in zip(SHAPE, template.shape, strict=True)]
    volume = ndimage.zoom(template / template.max() * INTENSITY_SCALE, factors, order=1)
    volume += np.random.default_rng(0).normal(0, 0.02 * INTENSITY_SCALE, SHAPE)
    affine = np.diag([*VOXEL_MM, 1.0])
    image_path, seg_path = folder / "la_900.nii.gz", folder / "la_900_seg.nii.gz"
    nib.save(nib.Nifti1Image(np.round(np.clip(volume, 0, None)).astype(np.int16), affine), image_path)
    nib.save(nib.Nifti1Image(ndimage.zoom(labels, factors, order=0), affine), seg_path)
    return image_path, seg_path


def config_settings() -> dict:
    section = yaml.safe_load((REPOSITORY / "config.yaml").read_text())["augment"]
    return {key: value for key, value in section.items() if key not in OPERATIONAL_KEYS}


def folder_md5(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.md5(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def gzip_seconds(path: Path) -> float:
    """Seconds to deflate the data of a written NIfTI as nibabel does (level 1, one stream)."""
    import nibabel as nib

    raw = np.asarray(nib.load(path).dataobj).tobytes(order="F")
    start = time.perf_counter()
    compressor = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    compressor.compress(raw)
    compressor.flush()
    return time.perf_counter() - start


@pytest.mark.benchmark
def test_the_stage_per_copy_fused_against_sequential(tmp_path, caplog):
    image, seg = heart_size_case(tmp_path)
    settings = config_settings()
    copies = settings["copies"]
    caplog.set_level(logging.INFO, logger="mlnb.augment.copies")

    def run(mode: str, threads: int) -> tuple[float, dict[str, float]]:
        """Seconds per copy of one ``mlnb augment`` and the seconds per copy of its phases."""
        caplog.clear()
        argv = ["augment", str(image), "--seg", str(seg), "--out", str(tmp_path / f"{mode}{threads}"), "--item",
                "la_900", "--seed", "1", "--settings", json.dumps(settings), "--mode", mode, "--threads", str(threads)]
        start = time.perf_counter()
        assert cli.main(argv) == 0
        seconds = (time.perf_counter() - start) / copies
        [phases] = [record.phase_seconds for record in caplog.records if hasattr(record, "phase_seconds")]
        phases = {name: value / copies for name, value in phases.items()}
        return seconds, {**phases, "other": seconds - sum(phases.values())}

    runs = [(mode, threads) for threads in (1, 2) for mode in ("sequential", "fused")]
    best: dict[tuple[str, int], tuple[float, dict[str, float]]] = {}
    outputs: dict[tuple[str, int], list[dict[str, str]]] = {run_key: [] for run_key in runs}
    for _ in range(ROUNDS):
        for mode, threads in runs:
            result = run(mode, threads)
            outputs[mode, threads].append(folder_md5(tmp_path / f"{mode}{threads}"))
            if (mode, threads) not in best or result[0] < best[mode, threads][0]:
                best[mode, threads] = result
    for (mode, _), sums in outputs.items():  # every run wrote the same bytes: image, labels, preview, record
        assert sum(name.endswith(".json") for name in sums[0]) == copies
        assert all(round_sums == outputs[mode, 1][0] for round_sums in sums), mode
    gzip_floor = gzip_seconds(tmp_path / "fused1" / "la_900_aug0.nii.gz")

    print(f"\nmlnb augment, {'x'.join(map(str, SHAPE))} int16 NIfTI + uint8 labels -> "
          f"{'x'.join(map(str, settings['dims']))}, config.yaml's settings (previews {settings['previews']}), "
          f"{copies} copies, best of {ROUNDS} interleaved:")
    for mode, threads in runs:
        seconds, phases = best[mode, threads]
        if threads == 1:
            breakdown = ", ".join(f"{name} {value * 1e3:,.0f}" for name, value in phases.items())
        else:  # written behind: the phases overlap, their sum is no part of the wall time
            breakdown = "written behind: " + ", ".join(
                f"{name} {phases[name] * 1e3:,.0f}" for name in ("engine", "write"))
        print(f"  --threads {threads}, {mode:10}: {seconds * 1e3:8,.0f} ms/copy   ({breakdown} ms)")
        if mode == "fused":
            print(f"  --threads {threads}, ratio: fused is {best['sequential', threads][0] / seconds:.1f}x the "
                  f"sequential mode per copy (target >= 10x)")
    print(f"  of the fused write, gzip level 1 of the image alone (the .nii.gz format): {gzip_floor * 1e3:,.0f} ms")
