"""The offline demo, run once per session for every workflow test that reads its results (demo_dir)."""

from __future__ import annotations

import pytest

from tests.workflow.test_workflow import DEMO_ARGS, copy_workflow, snakemake


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    """A copy of the workflow after the whole offline demo ran in it (minutes, so once per session)."""
    folder = copy_workflow(tmp_path_factory.mktemp("demo"))
    result = snakemake(*DEMO_ARGS, cwd=folder, timeout=1500)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return folder
