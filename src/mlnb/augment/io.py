"""Reading and writing images and segmentations: NIfTI (nibabel) and PNG/JPEG (Pillow).

NIfTI files keep their class, header and label dtype; the affine follows the
grid changes (crop, resample) so the output sits where it should in world
space, with its new voxel size. Augmented images are written as float32 (they
are normalised to [0, 1], which no integer type holds). PNG/JPEG images are read
as floats in [0, 1] (divided by 255, or 65535 for 16-bit PNG) and written back
in their bit depth, clipped; segmentations must be lossless (PNG or NIfTI).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from mlnb.augment.names import is_nifti, split_name
from mlnb.augment.pair import Augmented, Pair
from mlnb.errors import DataError
from mlnb.io import atomic_path


@dataclasses.dataclass
class ImageFile:
    """A file read from disk and what writing its augmented version needs."""

    path: Path
    extension: str
    data: np.ndarray
    nifti: object = None  # the loaded nibabel image (header, affine, class)
    kind: str | None = None
    peak: int = 255  # full scale of a PNG/JPEG image (255 or 65535)
    palette: list[int] | None = None  # of a palette ('P') PNG segmentation


@dataclasses.dataclass
class LoadedPair:
    pair: Pair
    image: ImageFile
    seg: ImageFile | None


def read_pair(image_path: str | Path, seg_path: str | Path | None = None) -> LoadedPair:
    """Read an image and its optional segmentation; every problem is a DataError naming the file."""
    image = read_image(Path(image_path))
    seg = None if seg_path is None else read_segmentation(Path(seg_path))
    pair = Pair(image.data, None if seg is None else seg.data, kind=image.kind,
                source=str(image.path), seg_source=str(seg.path) if seg else "segmentation")
    return LoadedPair(pair, image, seg)


def read_image(path: Path) -> ImageFile:
    _, extension = split_name(path)
    if is_nifti(extension):
        nifti, data = _load_nifti(path)
        return ImageFile(path, extension, data, nifti, kind="grey" if data.ndim == 2 else "volume")
    picture = _open_picture(path)
    if picture.mode in ("L", "I;16", "I", "F"):
        data = np.asarray(picture)
        peak = 65535 if data.dtype != np.uint8 else 255
        kind = "grey"
    else:
        data = np.asarray(picture.convert("RGB"))
        peak, kind = 255, "rgb"
    return ImageFile(path, extension, data.astype(np.float32) / peak, kind=kind, peak=peak)


def read_segmentation(path: Path) -> ImageFile:
    _, extension = split_name(path)
    if is_nifti(extension):
        nifti, data = _load_nifti(path)
        return ImageFile(path, extension, data, nifti)
    if extension.lower() != ".png":
        raise DataError(f"{path}: a segmentation must be lossless (PNG or NIfTI), not {extension}")
    picture = _open_picture(path)
    if picture.mode not in ("L", "P", "I;16", "I", "1"):
        raise DataError(f"{path}: a segmentation PNG must have one channel of labels, not mode {picture.mode}")
    palette = picture.getpalette() if picture.mode == "P" else None
    return ImageFile(path, extension, np.asarray(picture), palette=palette)


def _load_nifti(path: Path):
    import nibabel as nib

    try:
        nifti = nib.load(path)
        data = np.asanyarray(nifti.dataobj)
    except FileNotFoundError as error:
        raise DataError(f"{path}: file not found") from error
    except Exception as error:  # nibabel raises several types for broken files
        raise DataError(f"{path}: cannot read as NIfTI ({error})") from error
    return nifti, data.astype(data.dtype.newbyteorder("="), copy=False)


def _open_picture(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            picture.load()
            return picture
    except FileNotFoundError as error:
        raise DataError(f"{path}: file not found") from error
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"{path}: cannot read as an image ({error})") from error


def write_image(augmented: Augmented, source: ImageFile, out: Path) -> None:
    if is_nifti(source.extension):
        _write_nifti(augmented.image.astype(np.float32, copy=False), augmented.grid, source, out)
        return
    dtype = np.uint8 if source.peak == 255 else np.uint16
    pixels = np.round(np.clip(augmented.image, 0.0, 1.0) * source.peak).astype(dtype)
    _write_picture(pixels, out, source.extension)


def write_segmentation(augmented: Augmented, source: ImageFile, out: Path) -> None:
    if is_nifti(source.extension):
        _write_nifti(augmented.seg, augmented.grid, source, out)
    else:
        _write_picture(augmented.seg, out, source.extension, source.palette)


def _write_nifti(data: np.ndarray, grid: np.ndarray, source: ImageFile, out: Path) -> None:
    header = source.nifti.header.copy()
    # Fields that describe the source's values or slices would be wrong for the output:
    # display range (values are rescaled) and slice timing (slices are resampled).
    header["cal_min"] = header["cal_max"] = 0
    if data.shape[2:3] != source.nifti.shape[2:3]:
        header["slice_start"] = header["slice_end"] = header["slice_code"] = 0
        header["slice_duration"] = 0
    affine = source.nifti.affine @ grid
    image = type(source.nifti)(data, affine, header=header)
    image.set_data_dtype(data.dtype)
    _, qform_code = source.nifti.header.get_qform(coded=True)
    _, sform_code = source.nifti.header.get_sform(coded=True)
    image.set_qform(affine, int(qform_code or 0))
    image.set_sform(affine, int(sform_code or 0))
    with atomic_path(out) as tmp:
        image.to_filename(tmp)


def _write_picture(pixels: np.ndarray, out: Path, extension: str, palette: list[int] | None = None) -> None:
    from PIL import Image

    picture = Image.fromarray(pixels)
    if palette is not None:
        picture.putpalette(palette)  # an 'L' picture becomes 'P' with the source's colours
    is_jpeg = extension.lower() in (".jpg", ".jpeg")
    with atomic_path(out) as tmp:
        picture.save(tmp, format="JPEG" if is_jpeg else "PNG", **({"quality": 95} if is_jpeg else {}))
