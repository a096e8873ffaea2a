"""Write a large uint8 .npy incrementally, with flat memory, under its final name only when done.

Rows are appended, through a large buffer (a 64x64 face is one write call in 340, not
one each), to an anonymous scratch file beside the output; on success the
.npy header (which needs the final row count) is written and the rows are copied
after it in large blocks, then the file is renamed into place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mlnb.errors import DataError
from mlnb.io import atomic_path

COPY_BLOCK = 1 << 22


class RowAppender:
    """Appends rows of one shape and dtype to an open binary file."""

    def __init__(self, handle, row_shape: tuple[int, ...], dtype: np.dtype):
        self._handle = handle
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        self.count = 0

    def append(self, rows: np.ndarray) -> None:
        """Append one row (``row_shape``) or a block of rows (``(k, *row_shape)``)."""
        rows = np.asarray(rows)
        if rows.shape == self.row_shape:
            rows = rows[None]
        if rows.shape[1:] != self.row_shape or rows.dtype != self.dtype:
            raise DataError(f"cannot append {rows.dtype} rows of shape {rows.shape[1:]} "
                            f"to an array of {self.dtype} rows of shape {self.row_shape}")
        self._handle.write(np.ascontiguousarray(rows).data)
        self.count += len(rows)


@contextlib.contextmanager
def stream_npy(final: str | os.PathLike, row_shape: tuple[int, ...],
               dtype: np.dtype = np.uint8) -> Iterator[RowAppender]:
    """Yield a :class:`RowAppender`; on success ``final`` holds every row as one .npy."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=final.parent, prefix=f".{final.name}.rows", buffering=COPY_BLOCK) as scratch:
        appender = RowAppender(scratch, row_shape, dtype)
        yield appender
        header = {
            "descr": np.lib.format.dtype_to_descr(appender.dtype),
            "fortran_order": False,
            "shape": (appender.count, *appender.row_shape),
        }
        scratch.seek(0)
        with atomic_path(final) as tmp, open(tmp, "wb") as out:
            np.lib.format.write_array_header_1_0(out, header)
            shutil.copyfileobj(scratch, out, COPY_BLOCK)
