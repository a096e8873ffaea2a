from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

import mlnb
from mlnb.cli import main
from mlnb.demo import replicas, resources
from mlnb.errors import ConfigError
from mlnb.io import file_md5

PACKAGE = Path(mlnb.__file__).parent


def imported_modules(folder: Path) -> set[str]:
    """Every ``mlnb...`` module the source files below ``folder`` import, at any depth."""
    found = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "mlnb"}


@pytest.mark.parametrize(("stage", "never"), [("data", ("mlnb.demo", "mlnb.faces")), ("faces", ("mlnb.demo",))])
def test_the_demo_is_at_the_top_of_the_import_graph(stage, never):
    offending = {name for name in imported_modules(PACKAGE / stage) if name.startswith(never)}
    assert not offending, f"mlnb.{stage} imports {sorted(offending)}"


def test_records_name_package_files_not_this_machine(tmp_path):
    assert main(["demo-data", "--dataset", "mnist", "--dataset", "heart", "--out", str(tmp_path), "--seed", "1"]) == 0
    for dataset in ("mnist", "heart"):
        text = (tmp_path / dataset / "replica_record.json").read_text()
        assert "site-packages" not in text and str(Path.home()) not in text, dataset
        record = json.loads(text)
        assert (record["dataset"], record["seed"]) == (dataset, 1)
        for source in record["sources"]:
            resource = resources.PackageResource(source["package"], source["path"])
            assert not Path(source["path"]).is_absolute()
            assert source == resource.record()
            assert source["md5"] == file_md5(resource.file())


def test_build_replicas_builds_the_datasets_asked_for_one_by_one(tmp_path):
    built = list(replicas.build_replicas(tmp_path / "demo", seed=1, datasets=("mnist",)))
    assert built == [tmp_path / "demo" / "mnist"]
    assert [path.name for path in (tmp_path / "demo").iterdir()] == ["mnist"]
    assert json.loads((tmp_path / "demo" / "mnist" / "replica_record.json").read_text())["seed"] == 1
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        next(replicas.build_replicas(tmp_path / "file"))


def test_a_resource_is_found_by_its_path_inside_the_package():
    resource = resources.PackageResource("numpy", "__init__.py")
    assert resources.PackageResource.at("numpy", resource.file()) == resource
    assert resource.record()["version"] == np.__version__
