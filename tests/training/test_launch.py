"""The torchrun command line of a data-parallel job (mlnb.training.launch), built without importing torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlnb.errors import ConfigError
from mlnb.training.launch import launcher, torchrun_options


def test_one_process_runs_the_command_itself_more_run_under_torchrun_forwarding_sigusr1():
    assert launcher(1) == ""
    assert launcher(4) == "torchrun " + " ".join(torchrun_options(4)) + " --no-python "
    assert "--nproc-per-node=4" in launcher(4) and "SIGUSR1" in launcher(4) and "--standalone" in launcher(4)
    with pytest.raises(ConfigError, match="train.processes: must be >= 1"):
        launcher(0)


def test_the_snakefile_builds_the_command_without_importing_torch():
    probe = "import sys, mlnb.training.launch; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
