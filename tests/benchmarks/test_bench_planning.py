"""Planning cost: `snakemake -n` on the real config beside Snakemake's own start-up.

Run: .venv/bin/python -m pytest -s -m benchmark tests/benchmarks/test_bench_planning.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def timed(*args: str) -> tuple[float, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    return elapsed, result.stdout


@pytest.mark.benchmark
def test_dry_run_of_real_config():
    startup = min(timed("--version")[0] for _ in range(3))
    runs = [timed("-n", "--directory", str(REPO)) for _ in range(3)]
    planning = min(elapsed for elapsed, _ in runs)
    jobs = re.search(r"^total\s+(\d+)", runs[0][1], re.MULTILINE)
    print(f"\nsnakemake -n, real config.yaml: {planning:.2f} s for {jobs.group(1) if jobs else '?'} jobs "
          f"(best of 3); snakemake --version start-up: {startup:.2f} s; ratio {planning / startup:.1f}x")
