"""Packs: cropped, resampled to the median spacing, z-scored; bad inputs refused in one line naming the file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlnb import cli
from mlnb.segment.preprocess import Pack, heart_sources, write_pack
from tests.segment.cases import bars_and_blobs, write_case, write_index, write_set


def test_a_pack_holds_every_case_at_the_median_spacing_and_the_folds(tmp_path, capsys):
    index = write_set(tmp_path, 3)
    image, labels = bars_and_blobs(9)
    odd = write_case(tmp_path / "volumes", "case_03", image, labels, spacing=(4.0, 1.0, 1.0))
    write_index(index, [(row.case, row.image, row.label) for row in heart_sources(index)] + [("case_03", *odd)])
    assert cli.main(["prepare-segment", "--index", str(index), "--out", str(tmp_path / "pack"), "--folds", "2",
                     "--seed", "1"]) == 0
    pack = Pack.load(tmp_path / "pack")
    assert pack.names == ["case_00", "case_01", "case_02", "case_03"] and pack.index["spacing"] == [2.0, 1.0, 1.0]
    assert pack.index["labels"] == [0, 1]
    image, labels = pack.arrays("case_03")
    assert image.shape == (16, 32, 32) and set(np.unique(labels)) == {0, 1}  # 8 slices of 4 mm -> 16 of 2 mm
    body = pack.arrays("case_00")[0]
    assert abs(body.mean()) < 1e-2 and abs(body.std() - 1) < 1e-2  # all but the darkest voxel is body here
    folds = json.loads((tmp_path / "pack" / "folds.json").read_text())["folds"]
    assert sorted(case for part in folds for case in part) == pack.names
    assert "4 cases at 2x1x1 mm" in capsys.readouterr().out


def bad_set(tmp_path, problem):
    image, labels = bars_and_blobs(0)
    rows = [("case_00", *write_case(tmp_path, "case_00", image, labels))]
    if problem == "shape":
        rows[0] = ("case_00", rows[0][1], write_case(tmp_path, "small", image[:4], labels[:4])[1])
    elif problem == "affine":
        rows[0] = ("case_00", *write_case(tmp_path, "moved", image, labels, label_affine=np.diag([1, 1, 3, 1.0])))
    elif problem == "fractions":
        rows[0] = ("case_00", rows[0][1], write_case(tmp_path, "soft", image, labels * 0.5)[1])
    elif problem == "twice":
        rows.append(rows[0])
    return write_index(tmp_path / "index.csv", rows), rows[0][2]


@pytest.mark.parametrize(("problem", "message"), [
    ("shape", "{label}: label shape (32, 32, 4) differs from image shape (32, 32, 8)"),
    ("affine", "{label}: label affine differs from its image's"),
    ("fractions", "{label}: label holds non-integer values"),
    ("twice", "{index}: case 'case_00' is listed twice (rows 1 and 2)"),
])
def test_bad_inputs_are_refused_in_one_line_naming_the_file(tmp_path, caplog, problem, message):
    index, label = bad_set(tmp_path, problem)
    assert cli.main(["prepare-segment", "--index", str(index), "--out", str(tmp_path / "pack")]) == 2
    (record,) = [record for record in caplog.records if record.levelname == "ERROR"]
    assert record.getMessage() == message.format(label=label, index=index) or \
        record.getMessage().startswith(message.format(label=label, index=index))
    assert "\n" not in record.getMessage() and not (tmp_path / "pack").exists()


def test_fewer_cases_than_folds_and_the_copies_pack(tmp_path, caplog):
    index = write_set(tmp_path, 3)
    assert cli.main(["prepare-segment", "--index", str(index), "--out", str(tmp_path / "pack"), "--folds", "4"]) == 2
    assert "segment.folds 4: needs 2 <= folds <= the 3 labelled cases" in caplog.text
    write_pack(heart_sources(index), tmp_path / "pack")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("item,copy,image,seg\n" + "".join(
        f"case_0{n},0,{row.image},{row.label}\n" for n, row in enumerate(heart_sources(index))))
    assert cli.main(["prepare-segment", "--manifest", str(manifest), "--like", str(tmp_path / "pack"),
                     "--out", str(tmp_path / "copies")]) == 0
    copies = Pack.load(tmp_path / "copies")
    assert [case["origin"] for case in copies.cases] == ["case_00", "case_01", "case_02"]
    assert copies.names[0] == "case_00_aug0"
    assert copies.index["spacing"] == Pack.load(tmp_path / "pack").index["spacing"]
