"""Small file helpers shared by every stage: atomic writes and checksums."""

from __future__ import annotations

import contextlib
import functools
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


_FILE_MODE = _default_file_mode()


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` only on success.

    A failure (or interruption) removes the temporary file, so nothing half-written
    ever sits under the final name. ``suffix`` defaults to the final name's suffixes
    so that libraries which choose a format by extension (numpy, PIL, nibabel) work.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(final.suffixes) if suffix is None else suffix
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".part{suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


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
