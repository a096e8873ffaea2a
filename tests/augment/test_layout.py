"""The fused engine's layout moves: bit copies whatever the dtype and memory order, so outputs never depend on them."""

from __future__ import annotations

import numpy as np
import pytest

from mlnb.augment import Pair, augment, layout
from tests.augment.augment_helpers import make_pair, policy

DTYPES = ["uint8", "int8", ">i2", "float16", "int32", ">f4", "int64", "float64", "bool", "longdouble"]


def arrangements(array: np.ndarray) -> dict[str, np.ndarray]:
    return {"C": np.ascontiguousarray(array), "Fortran": np.asfortranarray(array), "strided": array[:, ::2]}


@pytest.mark.parametrize("dtype", DTYPES)
def test_planes_and_interleave_are_exact_transposes(dtype):
    values = np.random.default_rng(0).integers(-100, 100, size=(7, 10, 3))
    volume = values.astype(dtype) if dtype != "bool" else values > 0
    if dtype == "int64":
        volume[0, 0, :2] = -1, 0x7FF0000000000001  # bit patterns of NaNs, were the copy done in float64
    for name, arranged in arrangements(volume).items():
        stack = layout.planes(arranged)
        assert stack.dtype == volume.dtype and stack.flags.c_contiguous, name
        assert stack.tobytes() == np.ascontiguousarray(np.moveaxis(arranged, 2, 0)).tobytes(), name
        assert layout.interleave(stack).tobytes() == np.ascontiguousarray(arranged).tobytes(), name
        copy = layout.c_order_copy(arranged)
        assert copy.flags.c_contiguous and not np.shares_memory(copy, arranged), name
        assert copy.tobytes() == np.ascontiguousarray(arranged).tobytes(), name


def test_transpose_writes_into_out():
    volume = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    out = np.empty((4, 6), np.int16)
    assert layout.transpose(volume.reshape(6, 4), out=out) is out
    np.testing.assert_array_equal(out, volume.reshape(6, 4).T)


@pytest.mark.parametrize("kind", ["grey", "rgb", "volume"])
@pytest.mark.parametrize("order", [0, 1, 3, 5])
def test_fused_outputs_do_not_depend_on_memory_order_or_integer_storage(kind, order):
    """nibabel hands volumes over in Fortran order; an int16 image is the float32 image it stands for."""
    pair = make_pair(kind, seed=3)
    stored = np.round(pair.image * 1000).astype(np.int16)
    chains = policy(dims=(24, 20, 7) if kind == "volume" else (24, 20), transforms=[
        "rotate", "scale", "intensity", "flip", "translate", *(["slice_shift"] if kind == "volume" else [])],
        min_transforms=5, slice_shift_fraction=0.5)
    chain = chains.draw(np.random.default_rng(order), kind, pair.depth)
    layouts = (np.ascontiguousarray, np.asfortranarray)
    results = [augment(Pair(arrange(image), arrange(pair.seg), kind=kind), chain, "fused", order)
               for image in (stored, stored.astype(np.float32)) for arrange in layouts]
    for result in results[1:]:
        assert result.image.tobytes() == results[0].image.tobytes()
        assert result.seg.tobytes() == results[0].seg.tobytes()
        assert result.image.flags.c_contiguous and result.seg.flags.c_contiguous
