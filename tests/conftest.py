"""Suite-wide pytest setup: GPU tests skip cleanly without CUDA."""

from __future__ import annotations

import pytest


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
