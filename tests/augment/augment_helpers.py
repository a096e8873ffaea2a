"""Small synthetic images with segmentations derived from them (shared by the augment tests)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from mlnb.augment import Pair

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
