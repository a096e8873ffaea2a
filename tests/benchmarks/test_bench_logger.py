"""What the MLflow logger plugin adds to the demo's wall time: the whole offline demo with and without it.

Each run starts from an empty results/ in its own copy of the workflow; runs
alternate (without, with, without, with, ...) so that the machine's drift hits
both alike. The baseline's profile is the default one without its `logger:` entry.

Run: .venv/bin/python -m pytest -s -m benchmark tests/benchmarks/test_bench_logger.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROFILE = "workflow/profiles/default/config.yaml"
LOGGER_ENTRY = "logger:\n  - mlflow\n"
ROUNDS = 3


def demo_copy(folder: Path, logger: bool) -> Path:
    folder.mkdir(parents=True)
    for name in ("Snakefile", "config.yaml", "workflow", "envs"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, folder / name)
    profile = folder / PROFILE
    text = profile.read_text()
    assert LOGGER_ENTRY in text, "the default profile no longer turns the logger on"
    if not logger:
        profile.write_text(text.replace(LOGGER_ENTRY, ""))
    return folder


def demo_seconds(folder: Path) -> float:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--workflow-profile",
                             "workflow/profiles/default", "--configfile", "workflow/config/demo.yaml"],
                            cwd=folder, env=env, capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    return elapsed


@pytest.mark.benchmark
def test_logger_overhead_on_the_demo(tmp_path):
    times = {False: [], True: []}
    for round_number in range(ROUNDS):
        for logger in (False, True):
            folder = demo_copy(tmp_path / f"{round_number}-{'with' if logger else 'without'}", logger)
            times[logger].append(demo_seconds(folder))
    without, with_logger = (statistics.median(times[flag]) for flag in (False, True))
    print(f"\nmake demo (whole offline demo, --cores 2), median of {ROUNDS}: with --logger mlflow "
          f"{with_logger:.1f} s, without {without:.1f} s; ratio {with_logger / without:.3f} "
          f"({100 * (with_logger / without - 1):+.1f} %); runs with: "
          f"{', '.join(f'{t:.1f}' for t in times[True])} s, without: {', '.join(f'{t:.1f}' for t in times[False])} s")
