"""How a training command runs as N data-parallel processes: the ``torchrun`` command line.

Kept free of torch, so the Snakefile can build the rules' shell commands without importing it
(the processes themselves join up in :mod:`mlnb.training.distributed`).
"""

from __future__ import annotations

from mlnb.errors import ConfigError

#: Signals torchrun forwards to its workers: its defaults plus SIGUSR1, Slurm's warning before the time limit
#: (which torchrun would otherwise not handle, and die of).
FORWARDED_SIGNALS = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"
#: Seconds torchrun waits for its workers to stop (the last step and rank 0's checkpoint) before SIGKILL.
SHUTDOWN_SECONDS = 120


def launcher(processes: int) -> str:
    """The shell prefix that runs a command (``mlnb ...``) as ``processes`` data-parallel processes."""
    if processes < 1:
        raise ConfigError(f"train.processes: must be >= 1, got {processes}")
    if processes == 1:
        return ""
    return "torchrun " + " ".join(torchrun_options(processes)) + " --no-python "


def torchrun_options(processes: int) -> list[str]:
    """torchrun's flags for ``processes`` workers on this machine (a rendezvous of its own, on a free port)."""
    return ["--standalone", f"--nproc-per-node={processes}", f"--signals-to-handle={FORWARDED_SIGNALS}",
            f"--shutdown-timeout={SHUTDOWN_SECONDS}"]
