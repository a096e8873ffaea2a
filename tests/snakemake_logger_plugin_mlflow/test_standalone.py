"""The logger plugin lives in Snakemake's own environment: Snakemake and MLflow are all it needs.

The default profile turns it on, so an environment with Snakemake alone (``--sdm conda``: the rules' tools live
in their own environments) must hold it without the pipeline's heavy dependencies (torch, dlib, OpenCV, nibabel).
Its install route: ``pip install -c envs/constraints.txt snakemake mlflow``, then ``pip install --no-deps``
of mlnb's source (the distribution that ships the plugin).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import mlflow
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mlnb.job_runs import KIND_INVOCATION, KIND_JOB, TAG_KIND

REPO = Path(__file__).resolve().parents[2]
PLUGIN_MODULES = ("snakemake_logger_plugin_mlflow", "snakemake_logger_plugin_mlflow.recorder")
PIPELINE_ONLY = ("torch", "dlib", "cv2", "nibabel", "face_recognition_models", "skimage", "gdown")
TINY_SNAKEFILE = 'rule all:\n    output:\n        "done.txt"\n    shell:\n        "touch {output}"\n'


def required_distributions(*roots: str) -> set[str]:
    """``roots`` and every distribution they require, transitively (no extras), by canonical name."""
    found, todo = set(), [canonicalize_name(root) for root in roots]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:  # required on another platform only
            continue
        todo.extend(canonicalize_name(req.name) for req in map(Requirement, requires)
                    if req.marker is None or req.marker.evaluate({"extra": ""}))
    return found


def loaded_modules(*imports: str) -> set[str]:
    """Top-level modules that importing ``imports`` loads, beyond those of the interpreter's start."""
    script = "import sys; {}print(*sys.modules)"
    started, loaded = (set(subprocess.run([sys.executable, "-c", script.format(code)], capture_output=True,
                                          text=True, check=True, timeout=120).stdout.split())
                       for code in ("", "".join(f"import {name}; " for name in imports)))
    return {name.split(".")[0] for name in loaded - started}


def test_the_plugin_imports_only_snakemake_mlflow_their_dependencies_and_the_standard_library():
    allowed = required_distributions("snakemake", "mlflow") | {"mlnb"}
    owners = metadata.packages_distributions()
    outside = {module for module in loaded_modules(*PLUGIN_MODULES) if module not in sys.stdlib_module_names
               and not {canonicalize_name(owner) for owner in owners.get(module, [])} & allowed}
    assert outside == set()


@pytest.fixture(scope="session")
def snakemake_env(tmp_path_factory) -> Path:
    """A virtual environment with the pinned Snakemake and MLflow alone, and the plugin installed its way."""
    folder = tmp_path_factory.mktemp("snakemake-env")
    env = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=300)
    # pip builds in the source folder it is given: a copy keeps build/ out of the repository
    source = folder / "mlnb"
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source)
    pip = [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    for args in (["-c", str(REPO / "envs" / "constraints.txt"), "snakemake", "mlflow"], ["--no-deps", str(source)]):
        result = subprocess.run([*pip, *args], capture_output=True, text=True, timeout=1200)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return env


def in_env(env: Path, *command: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    variables = {name: value for name, value in os.environ.items() if not name.startswith("MLNB_")}
    variables["PATH"] = f"{env / 'bin'}{os.pathsep}{variables['PATH']}"
    return subprocess.run(command, cwd=cwd, env=variables, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_plugin_imports_beside_snakemake_and_mlflow_alone(snakemake_env):
    found = in_env(snakemake_env, "python", "-c", "import importlib.util as util; "
                   f"print(*(name for name in {PIPELINE_ONLY} if util.find_spec(name)))")
    assert found.returncode == 0 and found.stdout.split() == [], found.stderr
    imported = in_env(snakemake_env, "python", "-c", "".join(f"import {name}; " for name in PLUGIN_MODULES))
    assert imported.returncode == 0, imported.stderr[-3000:]


@pytest.mark.slow
def test_snakemake_runs_a_workflow_with_the_plugin_there(snakemake_env, tmp_path):
    """A dry run, then a run that logs the invocation and its job (the logger only warns when it cannot)."""
    (tmp_path / "Snakefile").write_text(TINY_SNAKEFILE)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    dry = in_env(snakemake_env, "snakemake", "--logger", "mlflow", "-n", "--cores", "1", cwd=tmp_path)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    assert not (tmp_path / "mlflow.db").exists()
    run = in_env(snakemake_env, "snakemake", "--logger", "mlflow", "--logger-mlflow-tracking-uri", uri,
                 "--logger-mlflow-experiment", "standalone", "--cores", "1", cwd=tmp_path)
    assert run.returncode == 0 and (tmp_path / "done.txt").exists(), run.stdout[-3000:] + run.stderr[-3000:]
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("standalone").experiment_id])
    assert sorted(run.data.tags[TAG_KIND] for run in runs) == sorted([KIND_INVOCATION, KIND_JOB])
    assert {run.info.status for run in runs} == {"FINISHED"}
