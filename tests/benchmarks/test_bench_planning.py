"""Planning cost of the full real config: `snakemake -n` time, the planner's peak memory, the job count.

Two states of a fresh copy of the workflow: before anything ran (the DAG up to the heart checkpoint) and
once the heart index exists (prepare_heart run on a 20-case archive, the real set's count), when the
checkpoint has added one augment_case job per case. Each beside Snakemake's own start-up
(`snakemake --version`), measured in the same run. Targets: under 5 s, 500 MB, 1,000 jobs.

Run: .venv/bin/python -m pytest -s -m benchmark tests/benchmarks/test_bench_planning.py
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlnb.demo import heart

REPO = Path(__file__).resolve().parents[2]
# The real Task02_Heart's training cases.
HEART_CASES = 20


# Runs snakemake and prints its peak resident KiB. A small launcher, because a child's ru_maxrss also
# counts the memory of the process it was forked from (here: pytest with the test's imports).
PEAK_LAUNCHER = """
import resource, subprocess, sys
code = subprocess.call([sys.executable, "-m", "snakemake", *sys.argv[1:]])
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def measured(folder: Path, *args: str) -> tuple[float, float, str]:
    """Wall seconds, peak resident MB and stdout of one `snakemake ARGS` in ``folder``."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", PEAK_LAUNCHER, *args], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    peak_kib = int(result.stderr.strip().rsplit("\n", 1)[-1])
    return elapsed, peak_kib / 1024, result.stdout


def jobs_of(dry_run: str, rule: str) -> int:
    """A rule's count in the dry run's job stats (``total`` for all of them); 0 when absent."""
    count = re.search(rf"^{rule}\s+(\d+)$", dry_run, re.MULTILINE)
    return int(count.group(1)) if count else 0


def best_of(runs: int, folder: Path, *args: str) -> tuple[float, float, str]:
    results = [measured(folder, *args) for _ in range(runs)]
    return min(r[0] for r in results), max(r[1] for r in results), results[0][2]


@pytest.mark.benchmark
def test_dry_run_of_real_config(tmp_path):
    for name in ("Snakefile", "config.yaml", "workflow", "envs"):
        source = REPO / name
        (shutil.copytree(source, tmp_path / name) if source.is_dir() else shutil.copy2(source, tmp_path / name))
    startup, startup_mb, _ = measured(tmp_path, "--version")
    fresh = best_of(3, tmp_path, "-n")
    heart.build(tmp_path / "results/data/heart", seed=0, cases=HEART_CASES)
    measured(tmp_path, "--cores", "1", "results/data/heart/index.csv")
    resolved = best_of(3, tmp_path, "-n")
    for state, (seconds, peak_mb, dry_run) in (("nothing run yet", fresh),
                                               (f"heart index of {HEART_CASES} cases", resolved)):
        jobs = jobs_of(dry_run, "total")
        print(f"\nsnakemake -n, real config.yaml, {state}: {seconds:.2f} s (best of 3), peak {peak_mb:.0f} MB, "
              f"{jobs} jobs; snakemake --version: {startup:.2f} s, {startup_mb:.0f} MB; "
              f"ratio {seconds / startup:.1f}x time, {peak_mb / startup_mb:.1f}x memory "
              f"(targets < 5 s, < 500 MB, < 1,000 jobs)")
    assert jobs_of(fresh[2], "augment_case") == 0
    assert jobs_of(resolved[2], "augment_case") == HEART_CASES
