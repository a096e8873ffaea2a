from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from mlnb.cli import main
from mlnb.faces.gather import gather

SHARDS = 3


def read_manifest(folder: Path) -> list[dict[str, str]]:
    with open(folder / "manifest.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def shard_dirs(celeba_replica, tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("shards")
    for shard in range(SHARDS):
        assert main(["align", str(celeba_replica.archive), "--index", str(celeba_replica.index),
                     "--shard", str(shard), "--shards", str(SHARDS), "--out", str(root / str(shard))]) == 0
    return [root / str(shard) for shard in range(SHARDS)]


def test_gather_joins_shards_in_order(shard_dirs, celeba_replica, tmp_path):
    assert main(["gather-faces", *map(str, shard_dirs), "--out", str(tmp_path)]) == 0
    faces = np.load(tmp_path / "faces.npy", mmap_mode="r")
    np.testing.assert_array_equal(faces, np.concatenate([np.load(d / "faces.npy") for d in shard_dirs]))
    rows = read_manifest(tmp_path)
    assert [row["source"] for row in rows] == celeba_replica.names
    assert [int(row["index"]) for row in rows if row["index"]] == list(range(len(faces)))
    # a face is the same array before and after gathering (the last shard holds only bad files)
    assert np.load(shard_dirs[-1] / "faces.npy").shape[0] == 0
    last = next(row for row in reversed(read_manifest(shard_dirs[1])) if row["index"])
    gathered = next(row for row in rows if row["source"] == last["source"])
    np.testing.assert_array_equal(faces[int(gathered["index"])],
                                  np.load(shard_dirs[1] / "faces.npy")[int(last["index"])])

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["images"] == len(rows) and summary["shards"] == SHARDS
    assert summary["aligned"] == len(faces) == sum(summary["method"].values())
    assert sum(summary["status"].values()) == len(rows)
    assert summary["reasons_not_aligned"]["unreadable"] == 2  # bad CRC and the member not in the zip
    assert summary["reasons_not_aligned"]["truncated"] == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["faces.npy", "manifest.csv", "summary.json"]


def test_gather_from_python_returns_the_summary_it_writes(shard_dirs, tmp_path):
    summary = gather(shard_dirs, tmp_path)
    assert summary == json.loads((tmp_path / "summary.json").read_text())
    assert summary["shards"] == SHARDS and summary["images"] == len(read_manifest(tmp_path))


def test_shard_that_disagrees_with_its_manifest_is_named(shard_dirs, tmp_path, caplog):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.csv").write_bytes((shard_dirs[0] / "manifest.csv").read_bytes())
    np.save(broken / "faces.npy", np.load(shard_dirs[0] / "faces.npy")[:-1])
    with caplog.at_level(logging.ERROR):
        assert main(["gather-faces", str(broken), "--out", str(tmp_path / "out")]) == 2
    assert f"{broken / 'faces.npy'}" in caplog.text and "does not match" in caplog.text
    assert not (tmp_path / "out" / "faces.npy").exists()


def test_missing_shard_is_named(shard_dirs, tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        assert main(["gather-faces", str(shard_dirs[0]), str(tmp_path / "absent"), "--out", str(tmp_path / "out")]) == 2
    assert f"faces {tmp_path / 'absent' / 'faces.npy'}: cannot read" in caplog.text
