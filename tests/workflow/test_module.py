"""The workflow reused the way Snakemake users reuse workflows: imported as a module from another folder, and
deployed by snakedeploy from a local clone."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.workflow.test_workflow import DEMO_CONFIG, REPO, copy_workflow, planned_jobs, snakemake, workflow_config

# A user's workflow that imports this one: its rules renamed mlnb_*, its config a section of the user's.
USER_SNAKEFILE = """configfile: "config.yaml"


module mlnb:
    snakefile:
        "{snakefile}"
    config:
        config["mlnb"]


use rule * from mlnb as mlnb_*
"""


def unprefixed(jobs: dict[str, int], prefix: str) -> dict[str, int]:
    assert all(rule.startswith(prefix) for rule in jobs), jobs
    return {rule.removeprefix(prefix): count for rule, count in jobs.items()}


@pytest.mark.slow
def test_a_workflow_that_imports_it_as_a_module_plans_and_runs_the_demo(tmp_path):
    (tmp_path / "direct").mkdir()
    direct = copy_workflow(tmp_path / "direct")
    demo_config = workflow_config(direct, "--configfile", DEMO_CONFIG)
    user = tmp_path / "user"
    user.mkdir()
    (user / "Snakefile").write_text(USER_SNAKEFILE.format(snakefile=REPO / "Snakefile"))
    (user / "config.yaml").write_text(yaml.safe_dump({"mlnb": demo_config}))
    assert unprefixed(planned_jobs(user), "mlnb_") == planned_jobs(direct, "--configfile", DEMO_CONFIG)

    result = snakemake("--cores", "2", "results/data/mnist/mnist.npz", cwd=user, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ran = sorted(re.findall(r"^Finished jobid: \d+ \(Rule: (\w+)\)", result.stdout + result.stderr, re.MULTILINE))
    assert ran == ["mlnb_demo_mnist", *["mlnb_fetch"] * 4, "mlnb_prepare_mnist"]
    with np.load(user / "results" / "data" / "mnist" / "mnist.npz") as mnist:
        assert len(mnist.files) > 0


@pytest.mark.slow
def test_snakedeploy_from_a_local_clone_gives_a_deployment_that_plans(tmp_path):
    """snakedeploy's local provider writes the module's Snakefile relative to the deployment (`"Snakefile"`: its
    known limitation; from GitHub it writes github("OWNER/mlnb", path="Snakefile", tag=...)), so the test points it
    at the clone; the clone has no config/ folder, so the user's config is the real config.yaml."""
    (tmp_path / "mlnb").mkdir()
    clone = copy_workflow(tmp_path / "mlnb")
    deployment = tmp_path / "deployment"
    snakedeploy = Path(sys.executable).parent / "snakedeploy"
    result = subprocess.run([str(snakedeploy), "deploy-workflow", str(clone), str(deployment), "--branch", "main"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    snakefile = deployment / "workflow" / "Snakefile"
    text = snakefile.read_text()
    assert re.search(r'^module mlnb:\n    snakefile: *\n        "Snakefile"\n    config:\n        config\n', text,
                     re.MULTILINE), text
    assert "use rule * from mlnb" in text and 'configfile: "config/config.yaml"' in text, text
    snakefile.write_text(text.replace('"Snakefile"', f'"{clone / "Snakefile"}"'))
    (deployment / "config" / "config.yaml").write_text((clone / "config.yaml").read_text())

    direct = planned_jobs(clone)
    assert planned_jobs(deployment) == direct and direct["fetch"] == 8
