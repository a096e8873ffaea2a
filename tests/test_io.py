from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from mlnb.errors import DataError
from mlnb.io import atomic_path, file_md5, package_file


def test_atomic_path_renames_on_success(tmp_path):
    final = tmp_path / "sub" / "array.npy"
    with atomic_path(final) as tmp:
        assert tmp.parent == final.parent and tmp.name.endswith(".part.npy")
        np.save(tmp, np.arange(3))
    np.testing.assert_array_equal(np.load(final), np.arange(3))
    assert [p.name for p in final.parent.iterdir()] == ["array.npy"]
    assert stat.S_IMODE(os.stat(final).st_mode) & 0o044  # readable by others, not mkstemp's 0600


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_the_old_file_when_a_rewrite_fails(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("complete")
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert final.read_text() == "complete"


def test_file_md5(tmp_path):
    (tmp_path / "x").write_bytes(b"hello")
    assert file_md5(tmp_path / "x") == "5d41402abc4b2a76b9719d911017c592"


def test_package_file_finds_and_refuses():
    assert package_file("numpy", "__init__.py").is_file()
    with pytest.raises(DataError, match="not installed"):
        package_file("no_such_package_mlnb", "x")
    with pytest.raises(DataError, match="missing from installed package 'numpy'"):
        package_file("numpy", "no-such-file.bin")


def test_atomic_path_refuses_an_empty_temporary(tmp_path):
    """A library that writes to another name (numpy adds .npz) must not leave an empty final file."""
    final = tmp_path / "arrays"
    with pytest.raises(DataError, match=r"arrays: the writer left its temporary file empty"), \
            atomic_path(final) as tmp:
        np.savez(tmp, x=np.arange(3))  # writes tmp + ".npz"
    assert list(tmp_path.iterdir()) == []  # neither the final name nor numpy's stray file


def test_atomic_path_refuses_a_missing_temporary(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("old")
    with pytest.raises(DataError, match=r"out\.txt: the writer left its temporary file missing"), \
            atomic_path(final) as tmp:
        tmp.unlink()
    assert final.read_text() == "old"


def test_atomic_path_may_write_an_empty_file_when_asked(tmp_path):
    with atomic_path(tmp_path / "empty.txt", allow_empty=True):
        pass
    assert (tmp_path / "empty.txt").read_bytes() == b""


def test_an_output_that_names_an_input_is_refused(tmp_path, monkeypatch):
    from mlnb.errors import ConfigError
    from mlnb.io import refuse_output_over_inputs

    source = tmp_path / "images.zip"
    source.write_bytes(b"the user's only copy")
    monkeypatch.chdir(tmp_path)
    for out in (source, "sub/../images.zip"):
        with pytest.raises(ConfigError, match=r"--out .*images\.zip is the input --celeba-images itself"):
            refuse_output_over_inputs(out, landmarks="list.txt", celeba_images=source)
    refuse_output_over_inputs("index.csv", images=source)  # another name is fine
