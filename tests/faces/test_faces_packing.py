from __future__ import annotations

import numpy as np
import pytest

from mlnb.errors import DataError
from mlnb.faces.packing import stream_npy


def test_rows_and_blocks_stream_into_one_npy(tmp_path):
    rows = np.arange(5 * 2 * 3, dtype=np.uint8).reshape(5, 2, 3)
    with stream_npy(tmp_path / "out.npy", (2, 3)) as appender:
        appender.append(rows[0])
        appender.append(rows[1:4])
        appender.append(rows[4])
        assert not (tmp_path / "out.npy").exists()
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy", mmap_mode="r"), rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npy"]


def test_no_rows_give_an_empty_array(tmp_path):
    with stream_npy(tmp_path / "empty.npy", (4, 4, 3)):
        pass
    assert np.load(tmp_path / "empty.npy").shape == (0, 4, 4, 3)


def test_failure_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError), stream_npy(tmp_path / "out.npy", (2,)) as appender:
        appender.append(np.zeros(2, dtype=np.uint8))
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_wrong_rows_are_refused(tmp_path):
    with stream_npy(tmp_path / "out.npy", (2, 3)) as appender:
        with pytest.raises(DataError, match=r"shape \(3, 2\)"):
            appender.append(np.zeros((1, 3, 2), dtype=np.uint8))
        with pytest.raises(DataError, match="float64"):
            appender.append(np.zeros((2, 3)))
