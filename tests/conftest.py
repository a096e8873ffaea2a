"""Suite-wide pytest setup: terminal Ctrl-C semantics, GPU tests skip cleanly without CUDA, an MLflow store per test."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.synthetic_mnist import write_mnist_npz


def pytest_configure(config):
    """Ctrl-C semantics as in a terminal, for this process and the processes the tests start (an ignored
    signal survives exec): a suite launched in the background of a script starts with SIGINT ignored,
    and the tests that interrupt a run with SIGINT would wait for nothing."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if _cuda_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def mlflow_template_db(tmp_path_factory):
    """One store made per session (experiment `tests`); tests copy it."""
    from mlnb import tracking

    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    tracking.create_experiment(f"sqlite:///{db}", "tests")
    return db


@pytest.fixture()
def mlflow_uri(mlflow_template_db, tmp_path):
    """A SQLite MLflow store in tmp_path with experiment ``tests``, as ``mlnb init-tracking`` makes it.

    Copied from one store made per session: creating a store runs migrations (seconds).
    """
    import shutil

    db = tmp_path / "mlflow.db"
    shutil.copyfile(mlflow_template_db, db)
    return f"sqlite:///{db}"


def _stop_after_first_checkpoint(command: list[str], checkpoint: Path, stop: signal.Signals,
                                 env: dict[str, str] | None = None, seconds: float = 120) -> str:
    """Run ``command``, send it ``stop`` once it has written ``checkpoint`` (the run is under way), and
    return its output; it must exit with 128 + the signal's number, as a cooperative stop does."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + seconds
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(stop)
    output, _ = process.communicate(timeout=seconds)
    assert process.returncode == 128 + stop, output
    assert f"stopped by {stop.name}" in output
    return output


@pytest.fixture()
def stop_after_first_checkpoint():
    """:func:`_stop_after_first_checkpoint`: a training command stopped by a signal mid-run."""
    return _stop_after_first_checkpoint


@pytest.fixture()
def mnist_npz(tmp_path):
    """A synthetic MNIST-shaped .npz (tests/synthetic_mnist.py): 200 train and 50 test digits."""
    return write_mnist_npz(tmp_path / "mnist.npz")
