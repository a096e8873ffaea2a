from __future__ import annotations

import errno
import os
import re
import stat

import numpy as np
import pytest

from mlnb.errors import ConfigError, DataError
from mlnb.io import Folder, atomic_path, check_outputs, file_md5, package_file


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


@pytest.mark.parametrize("spelling", ["same", "relative", "symlink", "hard link"])
def test_an_output_that_is_an_input_by_any_name_is_refused(tmp_path, monkeypatch, spelling):
    source = tmp_path / "images.zip"
    source.write_bytes(b"the user's only copy")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.zip").symlink_to(source)
    os.link(source, tmp_path / "hard.zip")
    monkeypatch.chdir(tmp_path)
    out = {"same": source, "relative": "sub/../images.zip", "symlink": "link.zip", "hard link": "hard.zip"}[spelling]
    with pytest.raises(ConfigError, match=r"^--out \S*\.zip is the input --images itself; write it elsewhere$"):
        check_outputs({"--landmarks": "list.txt", "--images": [None, source]}, {"--out": out})
    check_outputs({"--images": source}, {"--out": "index.csv", "--timing": None})  # other names are fine


def test_a_folder_refuses_the_inputs_it_would_write_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    (out / "samples").mkdir(parents=True)
    folder = Folder(out, ("summary.json", "samples/*"))
    refused = rf"^--out {re.escape(str(out))} would replace the input --data \S* \(the command writes "
    for written in (out / "summary.json", out / "samples" / "step_1.png", tmp_path / "x/../out/summary.json"):
        with pytest.raises(ConfigError, match=refused):
            check_outputs({"--data": written}, {"--out": folder})
    with pytest.raises(ConfigError, match=r"^--out \S*out is the input --data itself"):
        check_outputs({"--data": out}, {"--out": folder})
    check_outputs({"--stats": out / "real_stats.npz", "--data": tmp_path / "summary.json"}, {"--out": folder})
    with pytest.raises(ConfigError, match=r"the input --stats \S*real_stats\.npz \(the command writes \* there"):
        check_outputs({"--stats": out / "real_stats.npz"}, {"--checkpoint-dir": Folder(out)})  # a folder it fills


def test_a_pattern_takes_the_folder_name_literally(tmp_path):
    out = tmp_path / "[ab]"
    check_outputs({"IMAGE": tmp_path / "a" / "x_aug0.png"}, {"--out": Folder(out, ("x_aug*",))})
    with pytest.raises(ConfigError, match=r"would replace the input IMAGE"):
        check_outputs({"IMAGE": out / "x_aug0.png"}, {"--out": Folder(out, ("x_aug*",))})


def test_a_full_or_read_only_file_system_is_a_data_error_naming_the_file(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    final = tmp_path / "out.txt"
    with pytest.raises(DataError, match=r"out\.txt: cannot write it \(No space left on device\)"), \
            atomic_path(final) as tmp:
        tmp.write_text("half")
        full()
    monkeypatch.setattr("tempfile.mkstemp", lambda **kwargs: full())
    with pytest.raises(DataError, match=r"out\.txt: cannot write in its folder \(No space left on device\)"), \
            atomic_path(final):
        pass
    assert list(tmp_path.iterdir()) == []
