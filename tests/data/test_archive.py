"""mlnb.data.archive: safe extraction of tar and zip archives built in the tests."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from mlnb.data.archive import OWNERSHIP_RECORD, Extraction, is_macos_junk, safe_extract
from mlnb.errors import DataError

CONTENT = {
    "Task02_Heart/dataset.json": b'{"training": []}',
    "Task02_Heart/imagesTr/la_003.nii.gz": b"image bytes",
    "Task02_Heart/labelsTr/la_003.nii.gz": b"label bytes",
}


def _tar_entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data)
    return info, io.BytesIO(data) if kind == tarfile.REGTYPE else None


def _write_tar(path: Path, entries: list[tuple], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:
        for info, data in entries:
            tar.addfile(info, data)
    return path


def _write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def _everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.mark.parametrize("mode", ["w", "w:gz"], ids=["tar", "tar.gz"])
def test_good_tar_is_extracted(tmp_path, mode):
    archive = _write_tar(tmp_path / "task.tar", [_tar_entry(n, data=d) for n, d in CONTENT.items()], mode)
    dest = tmp_path / "out"
    result = safe_extract(archive, dest)
    assert result == Extraction(files=[dest / name for name in CONTENT], skipped=[])
    for name, data in CONTENT.items():
        assert (dest / name).read_bytes() == data
    assert sorted(p.name for p in dest.iterdir()) == [OWNERSHIP_RECORD, "Task02_Heart"]  # no staging folder left


def test_good_zip_is_extracted(tmp_path):
    archive = _write_zip(tmp_path / "faces.zip", {"img/000001.jpg": b"one", "img/000002.jpg": b"two"})
    result = safe_extract(archive, tmp_path / "out")
    assert result.files == [tmp_path / "out/img/000001.jpg", tmp_path / "out/img/000002.jpg"]
    assert (tmp_path / "out/img/000002.jpg").read_bytes() == b"two"


def test_symlink_inside_the_destination_is_kept(tmp_path):
    entries = [_tar_entry("d/real.txt", data=b"x"), _tar_entry("d/alias.txt", tarfile.SYMTYPE, link="real.txt")]
    safe_extract(_write_tar(tmp_path / "a.tar", entries), tmp_path / "out")
    assert (tmp_path / "out/d/alias.txt").is_symlink()
    assert (tmp_path / "out/d/alias.txt").read_bytes() == b"x"


def test_macos_junk_is_skipped_and_reported(tmp_path):
    files = {**CONTENT, "Task02_Heart/imagesTr/._la_003.nii.gz": b"resource fork",
             "__MACOSX/Task02_Heart/._dataset.json": b"junk", "Task02_Heart/.DS_Store": b"junk"}
    archive = _write_tar(tmp_path / "task.tar", [_tar_entry(n, data=d) for n, d in files.items()])
    result = safe_extract(archive, tmp_path / "out")
    assert result.skipped == ["Task02_Heart/imagesTr/._la_003.nii.gz", "__MACOSX/Task02_Heart/._dataset.json",
                              "Task02_Heart/.DS_Store"]
    assert _everything_under(tmp_path / "out") == sorted(
        [OWNERSHIP_RECORD, "Task02_Heart", "Task02_Heart/imagesTr", "Task02_Heart/labelsTr", *CONTENT])


@pytest.mark.parametrize(("name", "junk"), [("a/._b", True), ("__MACOSX/a", True), ("a/.DS_Store", True),
                                            ("a/_b", False), ("a._b", False), ("MACOSX/a", False)])
def test_is_macos_junk(name, junk):
    assert is_macos_junk(name) is junk


@pytest.mark.parametrize(("entry", "reason"), [
    (_tar_entry("Task02_Heart/../../evil.txt", data=b"x"), "'..' in the path"),
    (_tar_entry("/etc/evil.txt", data=b"x"), "absolute path"),
    (_tar_entry("Task02_Heart/link", tarfile.SYMTYPE, link="../../outside"), "symlink pointing outside"),
    (_tar_entry("Task02_Heart/link", tarfile.SYMTYPE, link="/etc/passwd"), "symlink pointing outside"),
    (_tar_entry("Task02_Heart/hard", tarfile.LNKTYPE, link="../outside"), "hard link pointing outside"),
    (_tar_entry("Task02_Heart/tty", tarfile.CHRTYPE), "device file or FIFO"),
    (_tar_entry("Task02_Heart/pipe", tarfile.FIFOTYPE), "device file or FIFO"),
], ids=["dotdot", "absolute", "symlink-up", "symlink-absolute", "hardlink-up", "device", "fifo"])
def test_unsafe_tar_entry_refuses_the_whole_archive(tmp_path, entry, reason):
    # the good entries come first: none of them may be written either
    entries = [_tar_entry(n, data=d) for n, d in CONTENT.items()] + [entry]
    archive = _write_tar(tmp_path / "bad.tar", entries)
    dest = tmp_path / "work" / "out"
    with pytest.raises(DataError) as caught:
        safe_extract(archive, dest)
    assert str(archive) in str(caught.value)
    assert repr(entry[0].name) in str(caught.value)
    assert reason in str(caught.value)
    assert not dest.exists()
    assert _everything_under(tmp_path / "work") == []


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "ok/../../evil.txt"])
def test_unsafe_zip_entry_refuses_the_whole_archive(tmp_path, name):
    archive = _write_zip(tmp_path / "bad.zip", {"ok/good.txt": b"good", name: b"evil"})
    with pytest.raises(DataError, match=f"refusing entry {name!r}"):
        safe_extract(archive, tmp_path / "work" / "out")
    assert _everything_under(tmp_path / "work") == []


def test_symlink_escaping_through_another_symlink_is_refused(tmp_path):
    """Each link looks harmless alone; tarfile's data filter catches the chain. dest stays empty."""
    entries = [_tar_entry("d", tarfile.DIRTYPE), _tar_entry("d/up", tarfile.SYMTYPE, link=".."),
               _tar_entry("escape", tarfile.SYMTYPE, link="d/up/.."), _tar_entry("escape/evil.txt", data=b"x")]
    archive = _write_tar(tmp_path / "chain.tar", entries)
    dest = tmp_path / "work" / "out"
    with pytest.raises(DataError, match="refusing entry 'escape'"):
        safe_extract(archive, dest)
    assert _everything_under(tmp_path / "work") == ["out"]


def test_members_limit_extraction(tmp_path):
    archive = _write_tar(tmp_path / "task.tar", [_tar_entry(n, data=d) for n, d in CONTENT.items()])
    result = safe_extract(archive, tmp_path / "out", members=["Task02_Heart/imagesTr", "Task02_Heart/dataset.json"])
    assert result.files == [tmp_path / "out/Task02_Heart/dataset.json",
                            tmp_path / "out/Task02_Heart/imagesTr/la_003.nii.gz"]
    assert not (tmp_path / "out/Task02_Heart/labelsTr").exists()
    with pytest.raises(DataError, match=r"no such member.*nothing/here"):
        safe_extract(archive, tmp_path / "out2", members=["nothing/here"])


def test_rerun_replaces_the_archive_entries_and_keeps_other_files(tmp_path):
    dest = tmp_path / "out"
    archive = _write_tar(tmp_path / "task.tar", [_tar_entry(n, data=d) for n, d in CONTENT.items()])
    safe_extract(archive, dest)
    (dest / "Task02_Heart/stale.txt").write_bytes(b"from an older extraction")
    (dest / "index.csv").write_bytes(b"kept")
    safe_extract(archive, dest)
    assert not (dest / "Task02_Heart/stale.txt").exists()
    assert (dest / "index.csv").read_bytes() == b"kept"
    assert sorted(p.name for p in dest.iterdir()) == [OWNERSHIP_RECORD, "Task02_Heart", "index.csv"]
    assert json.loads((dest / OWNERSHIP_RECORD).read_text()) == {"archive": str(archive), "entries": ["Task02_Heart"]}


def test_a_folder_that_extraction_did_not_make_is_never_replaced(tmp_path):
    """--extract-to used to replace a same-named top-level folder of the user's (their notes vanished)."""
    dest = tmp_path / "out"
    (dest / "Task02_Heart").mkdir(parents=True)
    (dest / "Task02_Heart/notes.txt").write_bytes(b"the user's notes")
    archive = _write_tar(tmp_path / "task.tar", [_tar_entry(n, data=d) for n, d in CONTENT.items()])
    with pytest.raises(DataError, match=r"Task02_Heart already exists and was not extracted by mlnb; refusing"):
        safe_extract(archive, dest)
    assert _everything_under(dest) == ["Task02_Heart", "Task02_Heart/notes.txt"]
    # Beside the user's own entries, an archive with other top-level names is extracted (and recorded).
    other = _write_tar(tmp_path / "other.tar", [_tar_entry("Task04/dataset.json", data=b"{}")])
    safe_extract(other, dest)
    assert (dest / "Task02_Heart/notes.txt").read_bytes() == b"the user's notes"
    assert json.loads((dest / OWNERSHIP_RECORD).read_text())["entries"] == ["Task04"]


class _SimulatedKillError(Exception):
    """Stands in for a kill in the middle of writing a member."""


def test_interrupted_extraction_leaves_nothing_under_the_final_name(tmp_path, monkeypatch):
    archive = _write_tar(tmp_path / "task.tar", [_tar_entry(n, data=d) for n, d in CONTENT.items()])
    real_copy = tarfile.copyfileobj
    copies = []

    def copy_then_die(*args, **kwargs):
        copies.append(1)
        if len(copies) == 2:
            raise _SimulatedKillError
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(tarfile, "copyfileobj", copy_then_die)
    dest = tmp_path / "out"
    with pytest.raises(_SimulatedKillError):
        safe_extract(archive, dest)
    assert len(copies) == 2
    assert _everything_under(dest) == []


def test_truncated_archive_is_a_clear_error(tmp_path):
    archive = _write_tar(tmp_path / "task.tar.gz", [_tar_entry(n, data=d * 1000) for n, d in CONTENT.items()], "w:gz")
    archive.write_bytes(archive.read_bytes()[:-40])
    with pytest.raises(DataError, match="corrupt or truncated"):
        safe_extract(archive, tmp_path / "out")
    assert _everything_under(tmp_path / "out") == []


@pytest.mark.parametrize(("content", "message"), [(None, "archive not found"),
                                                  (b"just some text", "not a readable tar or zip")])
def test_missing_or_foreign_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "thing.tar"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        safe_extract(path, tmp_path / "out")
