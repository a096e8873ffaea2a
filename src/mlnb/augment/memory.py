"""What one ``mlnb augment`` job needs in memory, from the files' headers and the settings.

Read before any voxel is: the NIfTI header (shape, stored type, scaling) or the
picture header (size, mode). The estimate counts the arrays that live at the
peak (the loaded pair, its float32 working copy and label codes, the warped
planes, the output and its label codes) plus the interpreter and its libraries;
the sequential reference also holds scipy's float64 spline coefficients.
Measured peak resident memory of ``mlnb augment`` on a 320x320x130 int16 volume
with a uint8 segmentation: 310 MB to 224x224x112 (estimate 445 MB), 880 MB to
448x448x224 (estimate 1.2 GB); sequential 540 MB / 830 MB (estimates 680 MB / 1.5 GB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from mlnb.augment.names import is_nifti, split_name
from mlnb.errors import ConfigError, DataError
from mlnb.memory import MIB, available_bytes, describe, to_mb

#: the interpreter with numpy, scipy, OpenCV, nibabel and Pillow loaded (measured: 120 MB)
BASELINE_BYTES = 150 * MIB
#: the arrays counted below are not all there is (temporaries, allocator slack)
SLACK = 1.15


@dataclass(frozen=True)
class Header:
    """What the estimate needs of one file: its array's shape and the bytes per element once loaded."""

    shape: tuple[int, ...]
    itemsize: int


def read_header(path: str | Path, is_seg: bool = False) -> Header:
    """The shape and loaded element size of an image or segmentation, from its header only."""
    path = Path(path)
    _, extension = split_name(path)
    if is_nifti(extension):
        import nibabel as nib

        try:
            header = nib.load(path).header
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        except Exception as error:  # nibabel raises several types for broken headers
            raise DataError(f"{path}: cannot read as NIfTI ({error})") from None
        slope, inter = header.get_slope_inter()
        scaled = (slope not in (None, 1.0) and not math.isnan(slope)) or (inter not in (None, 0.0)
                                                                         and not math.isnan(inter))
        itemsize = 8 if scaled else header.get_data_dtype().itemsize  # nibabel scales to float64
        return Header(tuple(int(n) for n in header.get_data_shape()), itemsize)
    from PIL import Image

    try:
        with Image.open(path) as picture:
            width, height, mode = picture.width, picture.height, picture.mode
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read as an image ({error})") from None
    channels = 1 if is_seg or mode in ("L", "P", "1", "I;16", "I", "F") else 3
    return Header((height, width) if channels == 1 else (height, width, channels), 4)


def output_shape(shape: tuple[int, ...], dims: tuple[int, ...] | None) -> tuple[int, ...]:
    """The copy's shape: the plane cropped square, then resampled to ``dims`` when given."""
    side = min(shape[:2])
    depth = shape[2:]
    if dims is None:
        return (side, side, *depth)
    return (*dims[:2], *(dims[2:] or depth))


def required_bytes(image: Header, seg: Header | None, dims: tuple[int, ...] | None, mode: str) -> int:
    """Peak bytes of augmenting this pair (one copy at a time, the copies one after another).

    With two or more threads one finished copy waits to be written while the next is computed: its float32
    image and labels (voxels_out * (4 + seg_item)) are not counted apart; SLACK covers them (at 224x224x112,
    28 MB of the 38 MB it adds to a 320x320x130 int16 case, whose measured peak is 135 MB under the estimate).
    """
    voxels_in = math.prod(image.shape)
    out_shape = output_shape(image.shape, dims)
    voxels_out = math.prod(out_shape)
    depth_in = math.prod(image.shape[2:])
    warped = math.prod(out_shape[:2]) * depth_in  # before the slice axis is resampled
    code = 0 if seg is None else (1 if seg.itemsize == 1 else 2)
    seg_item = 0 if seg is None else seg.itemsize
    total = voxels_in * (image.itemsize + 4 + 1 + seg_item + 2 * code)  # loaded, float32 stack, checks, codes
    total += warped * (4 + code) + voxels_out * (3 * 4 + 2 * code + seg_item)
    if mode == "sequential":  # scipy's spline prefilter works in float64, on a chain of full copies
        total += 2 * 8 * voxels_in
    return int(BASELINE_BYTES + SLACK * total)


def estimate(image_path: str | Path, seg_path: str | Path | None, dims, mode: str) -> int:
    image = read_header(image_path)
    seg = None if seg_path is None else read_header(seg_path, is_seg=True)
    return required_bytes(image, seg, None if dims is None else tuple(dims), mode)


def estimate_mb(image_path, seg_path, dims, mode: str) -> int:
    """The estimate in MB, for a rule's ``mem_mb``."""
    return to_mb(estimate(image_path, seg_path, dims, mode))


def check_fits(image_path, seg_path, dims, mode: str) -> int:
    """The estimate; a ConfigError naming the input and the sizes when it exceeds what is available."""
    needed = estimate(image_path, seg_path, dims, mode)
    available = available_bytes()
    if available is not None and needed > available:
        shape = read_header(image_path).shape
        out = output_shape(shape, None if dims is None else tuple(dims))
        raise ConfigError(
            f"{image_path}: augmenting {'x'.join(map(str, shape))} to {'x'.join(map(str, out))} ({mode}) needs "
            f"about {describe(needed)}, but only {describe(available)} is available; lower augment.dims "
            "or run with more memory")
    return needed
