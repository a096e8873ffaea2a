"""Small synthetic images with segmentations derived from them (shared by the augment tests)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from mlnb.augment import Pair
from mlnb.augment.policy import RandomPolicy
from mlnb.augment.settings import AugmentSettings

THRESHOLD = 0.5


def smooth_image(shape, seed=0, sigma=3.0) -> np.ndarray:
    """Smooth random blobs in [0, 1] (band-limited, so interpolators agree closely)."""
    noise = np.random.default_rng(seed).random(shape)
    sigmas = (sigma, sigma) + (0,) * (len(shape) - 2)
    image = ndimage.gaussian_filter(noise, sigmas, mode="nearest")
    image = (image - image.min()) / (image.max() - image.min())
    return image.astype(np.float32)


def threshold_segmentation(image: np.ndarray, kind: str) -> np.ndarray:
    grey = image.mean(axis=2) if kind == "rgb" else image
    labels = (grey > THRESHOLD).astype(np.uint8) + (grey > 0.75)
    return labels.astype(np.uint8)


def policy(**overrides) -> RandomPolicy:
    """The random policy of the schema's defaults (the blog's), with ``overrides``."""
    as_json = {key: list(value) if isinstance(value, tuple) else value for key, value in overrides.items()}
    return AugmentSettings.from_mapping(as_json).policy()


def make_pair(kind: str, shape=None, seed=0) -> Pair:
    shape = shape or {"grey": (40, 34), "rgb": (40, 34, 3), "volume": (40, 34, 5)}[kind]
    image = smooth_image(shape, seed)
    return Pair(image, threshold_segmentation(image, kind), kind=kind)


def write_nifti_pair(source, folder, seg_dtype=np.uint8):
    """anatomical.nii plus a NIfTI label map (threshold of its intensities) beside it in ``folder``."""
    import nibabel as nib

    image = nib.load(source)
    data = np.asanyarray(image.dataobj)
    labels = ((data > np.percentile(data, 60)).astype(int) + (data > np.percentile(data, 90))).astype(seg_dtype)
    seg_path = folder / "anatomical_seg.nii.gz"
    nib.save(nib.Nifti1Image(labels, image.affine), seg_path)
    return seg_path


def write_picture_pair(folder, rgb=True, step=8):
    """A small 64x64 astronaut (PNG, RGB or grey) and a PNG label map of it."""
    from PIL import Image
    from skimage import data

    astronaut = data.astronaut()[::step, ::step]
    picture = astronaut if rgb else astronaut.mean(axis=2).astype(np.uint8)
    grey = astronaut.mean(axis=2)
    labels = ((grey > 100).astype(np.uint8) + (grey > 180)).astype(np.uint8)
    image_path, seg_path = folder / "astronaut.png", folder / "astronaut_seg.png"
    Image.fromarray(picture).save(image_path)
    Image.fromarray(labels).save(seg_path)
    return image_path, seg_path


def wave(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """A smooth image known everywhere (two plane waves in [0, 1]): the ground truth of any warp."""
    return (0.5 + 0.25 * np.sin(2 * np.pi * (0.11 * rows + 0.07 * cols))
            + 0.25 * np.cos(2 * np.pi * (0.05 * rows - 0.13 * cols))).astype(np.float32)


def wave_pair(shape) -> Pair:
    """``wave`` sampled on a (H, W) or (H, W, depth) grid (the same plane in every slice), labels above 0.5."""
    rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    plane = wave(rows, cols)
    image = plane if len(shape) == 2 else np.repeat(plane[:, :, None], shape[2], axis=2)
    return Pair(image, (image > 0.5).astype(np.uint8), kind="grey" if len(shape) == 2 else "volume")


def warped_wave(forward: np.ndarray, plane) -> np.ndarray:
    """The exact result of warping ``wave`` by the 3x3 forward map onto a grid of ``plane``."""
    rows, cols = np.meshgrid(np.arange(plane[0]), np.arange(plane[1]), indexing="ij")
    pulled = np.linalg.inv(forward) @ np.stack([rows.ravel(), cols.ravel(), np.ones(rows.size)])
    return wave(pulled[0], pulled[1]).reshape(plane)
