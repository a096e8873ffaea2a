"""Safe extraction of tar (plain or compressed) and zip archives.

Every entry is checked before anything is written: an absolute path, a ``..``
component, a link pointing outside the destination, or a device file/FIFO refuses
the whole archive with a DataError naming the archive and the entry. tarfile's
``filter="data"`` runs as well, as a second line of defence (it also catches links
that escape through other links). macOS AppleDouble junk (``._*``, ``__MACOSX/``,
``.DS_Store``) is skipped and reported.

Extraction goes to a hidden staging folder inside ``dest``; only when it is
complete are the archive's top-level entries renamed into ``dest``, so an
interrupted extraction never leaves a half-written tree under a final name.
``dest/.mlnb-extraction.json`` records the top-level entries that extraction put
there: a rerun replaces those (it is idempotent), but an entry of the same name
that something else made is never replaced; the archive is refused instead.
"""

from __future__ import annotations

import gzip
import json
import logging
import lzma
import os
import posixpath
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from mlnb.errors import DataError
from mlnb.io import atomic_path

log = logging.getLogger(__name__)

#: in an extraction folder: which of its top-level entries mlnb extracted (and so may replace)
OWNERSHIP_RECORD = ".mlnb-extraction.json"

#: what tarfile, zipfile and the decompressors raise for damaged or truncated data
_CORRUPT = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)


@dataclass(frozen=True)
class Extraction:
    files: list[Path]  # every extracted non-directory entry, as a path under dest, in archive order
    skipped: list[str]  # macOS junk entries that were not extracted


@dataclass(frozen=True)
class _Entry:
    name: str  # normalised: forward slashes, no leading "./", no trailing "/"
    kind: str  # "file", "dir", "symlink", "hardlink" or "special"
    link: str = ""  # the link target for symlinks and hard links


def is_macos_junk(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return "__MACOSX" in parts or (bool(parts) and (parts[-1].startswith("._") or parts[-1] == ".DS_Store"))


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike,
                 members: Iterable[str] | None = None) -> Extraction:
    """Extract ``archive`` (tar, tar.gz/bz2/xz, or zip) into ``dest``, refusing unsafe entries.

    ``members`` limits extraction to these entry names and everything under them.
    """
    archive, dest = Path(archive), Path(dest)
    with _open(archive) as reader:
        entries = _checked_entries(reader, archive)
        wanted = [entry for entry in entries if not is_macos_junk(entry.name)]
        if members is not None:
            wanted = _select(wanted, list(members), archive)
        _extract_staged(reader, [entry.name for entry in wanted], archive, dest)
    skipped = [entry.name for entry in entries if is_macos_junk(entry.name)]
    if skipped:
        log.info("%s: skipped %d macOS junk entries (e.g. %s)", archive, len(skipped), skipped[0])
    files = [dest / entry.name for entry in wanted if entry.kind != "dir"]
    return Extraction(files=list(dict.fromkeys(files)), skipped=skipped)


def _checked_entries(reader: _TarReader | _ZipReader, archive: Path) -> list[_Entry]:
    """List every entry, refusing the archive if any one of them is unsafe."""
    try:
        entries = reader.entries()
    except _CORRUPT as error:
        raise DataError(f"{archive}: corrupt or truncated archive ({error}); nothing was extracted") from error
    for entry in entries:
        reason = _unsafe_reason(entry)
        if reason:
            raise DataError(f"{archive}: refusing entry {entry.name!r}: {reason}; nothing was extracted")
    return entries


def _owned_entries(dest: Path) -> set[str]:
    """The top-level entries of ``dest`` that an earlier extraction recorded as its own."""
    record = dest / OWNERSHIP_RECORD
    if not record.is_file():
        return set()
    try:
        entries = json.loads(record.read_text())["entries"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{record}: unreadable extraction record ({error}); "
                        f"remove it only if mlnb made everything in {dest}") from error
    return {name for name in entries if isinstance(name, str)}


def _claim_top_level(names: list[str], archive: Path, dest: Path) -> list[str]:
    """Refuse to replace a top-level entry of ``dest`` that no earlier extraction made; return all owned ones."""
    owned = _owned_entries(dest)
    top_level = sorted({PurePosixPath(name).parts[0] for name in names if name != "."})
    for name in top_level:
        if name == OWNERSHIP_RECORD:
            raise DataError(f"{archive}: refusing entry {name!r}: the name of mlnb's extraction record")
        existing = dest / name
        if (existing.exists() or existing.is_symlink()) and name not in owned:
            raise DataError(f"{archive}: {existing} already exists and was not extracted by mlnb; "
                            "refusing to replace it (extract into an empty or mlnb-made folder)")
    return sorted(owned | set(top_level))


def _extract_staged(reader: _TarReader | _ZipReader, names: list[str], archive: Path, dest: Path) -> None:
    """Extract into a staging folder inside ``dest``, then rename the complete tree into place."""
    if dest.exists() and not dest.is_dir():
        raise DataError(f"{dest}: is not a folder; cannot extract {archive} into it")
    owned = _claim_top_level(names, archive, dest)
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{archive.name}.extracting-", dir=dest))
    tree = staging / "tree"
    try:
        tree.mkdir()
        try:
            reader.extract(names, tree)
        except tarfile.FilterError as error:
            raise DataError(f"{archive}: refusing entry {error.tarinfo.name!r}: {error}; "
                            f"nothing was extracted into {dest}") from error
        except _CORRUPT as error:
            raise DataError(f"{archive}: corrupt or truncated archive ({error}); "
                            f"nothing was extracted into {dest}") from error
        _move_into_place(tree, dest, staging / "replaced")
        with atomic_path(dest / OWNERSHIP_RECORD) as tmp:
            tmp.write_text(json.dumps({"archive": str(archive), "entries": owned}, indent=1) + "\n")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unsafe_reason(entry: _Entry) -> str | None:
    if entry.name.startswith("/") or PureWindowsPath(entry.name).drive:
        return "absolute path"
    if ".." in PurePosixPath(entry.name).parts:
        return "'..' in the path"
    if entry.kind == "special":
        return "device file or FIFO"
    if entry.kind == "symlink":
        target = posixpath.join(posixpath.dirname(entry.name), entry.link)
        if entry.link.startswith("/") or _escapes(target):
            return f"symlink pointing outside the destination ({entry.link!r})"
    if entry.kind == "hardlink" and (entry.link.startswith("/") or _escapes(entry.link)):
        return f"hard link pointing outside the destination ({entry.link!r})"
    return None


def _escapes(relative: str) -> bool:
    normal = posixpath.normpath(relative)
    return normal == ".." or normal.startswith("../")


def _select(entries: list[_Entry], members: list[str], archive: Path) -> list[_Entry]:
    wanted = {_normalise(name) for name in members}
    found = {name for name in wanted if any(e.name == name or e.name.startswith(name + "/") for e in entries)}
    if missing := sorted(wanted - found):
        raise DataError(f"{archive}: no such member(s): {', '.join(missing)}")
    return [e for e in entries if e.name in wanted or any(e.name.startswith(name + "/") for name in wanted)]


def _move_into_place(tree: Path, dest: Path, replaced: Path) -> None:
    """Rename each top-level entry of ``tree`` into ``dest``, moving an older copy into ``replaced``."""
    replaced.mkdir()
    for child in sorted(tree.iterdir()):
        final = dest / child.name
        if final.exists() or final.is_symlink():
            os.replace(final, replaced / child.name)
        os.replace(child, final)


def _normalise(name: str) -> str:
    """Forward-slash entry name without leading "./" or trailing "/" ("." is the root, "/" stays absolute)."""
    while name.startswith("./"):
        name = name[2:]
    if name and not name.strip("/"):
        return "/"
    return name.rstrip("/") or "."


class _TarReader:
    def __init__(self, path: Path):
        self.tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by __exit__

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.tar.close()

    def entries(self) -> list[_Entry]:
        return [_Entry(_normalise(info.name), _tar_kind(info), info.linkname) for info in self.tar.getmembers()]

    def extract(self, names: list[str], into: Path) -> None:
        chosen = set(names)
        infos = [info for info in self.tar.getmembers() if _normalise(info.name) in chosen]
        self.tar.extractall(into, members=infos, filter="data")  # noqa: S202 - entries checked first


def _tar_kind(info: tarfile.TarInfo) -> str:
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    return "file" if info.isreg() else "special"


class _ZipReader:
    """zipfile never creates links or devices, so every zip entry is a file or a directory."""

    def __init__(self, path: Path):
        self.zip = zipfile.ZipFile(path)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.zip.close()

    def entries(self) -> list[_Entry]:
        return [_Entry(_normalise(info.filename), "dir" if info.is_dir() else "file") for info in self.zip.infolist()]

    def extract(self, names: list[str], into: Path) -> None:
        chosen = set(names)
        members = [info for info in self.zip.infolist() if _normalise(info.filename) in chosen]
        self.zip.extractall(into, members=members)  # noqa: S202 - entries checked first


def _open(archive: Path) -> _TarReader | _ZipReader:
    if not archive.is_file():
        raise DataError(f"{archive}: archive not found")
    try:
        if zipfile.is_zipfile(archive):
            return _ZipReader(archive)
        return _TarReader(archive)
    except (*_CORRUPT, OSError) as error:
        reason = " ".join(str(error).split())  # tarfile lists every method it tried, one per line
        raise DataError(f"{archive}: not a readable tar or zip archive ({reason})") from error
