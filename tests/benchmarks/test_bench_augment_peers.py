"""The fused engine beside TorchIO and MONAI: the same inputs, the same fixed transform, one thread.

Each contender rotates by 7 degrees in-plane, scales by 1.1, flips left-right, shifts by (3, -2) pixels,
multiplies intensities by 1.05 and resamples to the config's size (the plane is square, so the crop around
the segmentation keeps it whole); images cubic, or what the contender offers instead (linear, B-spline),
labels nearest. Two sizes: a 224x224x8 pair and a heart-sized 320x320x110 pair resampled to 224x224x112.
Repetitions are interleaved (every contender once per round), everything on one thread (torch, OpenCV, BLAS,
SimpleITK), and each contender's output is checked against the fused engine's (Dice of the labels, RMS
difference of the images): a contender that does another transform fails here instead of winning the table.

TorchIO and MONAI are optional (the ``bench`` extra; ``make benchmark`` installs them); without them this
benchmark is skipped. Run: .venv/bin/python -m pytest -s -m benchmark tests/benchmarks/test_bench_augment_peers.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage
from threadpoolctl import threadpool_limits

from mlnb.augment import CropToSegmentation, Flip, Intensity, Pair, Resample, Rotate, Scale, Translate, augment
from mlnb.augment.fused import plan_chain
from mlnb.augment.pair import Trace

DEGREES, FACTOR, SHIFT, BRIGHTER = 7.0, 1.1, (3, -2), 1.05
SIZES = {"224×224×8 pair": ((224, 224, 8), (224, 224, 8), 9),
         "320×320×110 → 224×224×112 pair": ((320, 320, 110), (224, 224, 112), 3)}  # input, output, rounds
#: below this mean Dice against the fused engine's labels a contender did another transform (measured: >= 0.96)
DICE_FLOOR = 0.9
#: above this RMS difference from the fused image (a share of its range, 16 pixels from the border) a contender
#: did another transform or intensity change (measured: <= 0.0032; the fused image without the factor 1.05: 0.026)
IMAGE_CEILING = 0.01

Run = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def chain(dims) -> list:
    return [Rotate(DEGREES), Scale(FACTOR), Intensity(BRIGHTER), Flip(lr=True), Translate(*SHIFT),
            CropToSegmentation(), Resample(tuple(dims))]


def synthetic_pair(shape, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth float32 volume and a 3-class label map of it, structures about a twentieth of the plane wide
    and a few slices deep."""
    sigma = shape[0] / 20
    field = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape, dtype=np.float32), (sigma, sigma, 2))
    low, high = np.percentile(field, (50, 80))
    labels = (field > low).astype(np.uint8) + (field > high)
    return (field - field.min()) / np.ptp(field) * 1000, labels.astype(np.uint8)


def pull_map(shape, dims) -> np.ndarray:
    """The fixed transform as a 4x4 pull map: output voxel (row, col, slice, 1) -> input voxel.

    MONAI takes such a matrix; this one is the fused engine's own plan, so MONAI's Dice checks the conversion
    to its coordinates, while TorchIO and the scipy chain build the transform from its parameters."""
    plan = plan_chain(chain(dims), shape[:2], shape[2], Trace("peers", "volume"))
    pull = np.eye(4)
    pull[np.ix_([0, 1, 3], [0, 1, 3])] = plan.pulls()[0]
    pull[2, 2] = (shape[2] - 1) / (dims[2] - 1) if dims[2] > 1 else 1.0
    return pull


def centred(pull: np.ndarray, shape_in, shape_out) -> np.ndarray:
    """A voxel pull map in MONAI's coordinates, whose origin is each grid's centre."""
    ndim = len(shape_in)

    def shift(shape, sign):
        matrix = np.eye(ndim + 1)
        matrix[:ndim, ndim] = sign * (np.asarray(shape) - 1) / 2
        return matrix

    return shift(shape_in, -1) @ pull @ shift(shape_out, 1)


def fused(dims) -> Run:
    def run(image, labels):
        result = augment(Pair(image, labels, "volume"), chain(dims), "fused", 3)
        return result.image, result.seg

    return run


def sequential(dims) -> Run:
    def run(image, labels):
        result = augment(Pair(image, labels, "volume"), chain(dims), "sequential", 3)
        return result.image, result.seg

    return run


def monai_3d(shape, dims, mode) -> Run:
    from monai.transforms import Affined, Compose, ScaleIntensityd

    transform = Compose([
        Affined(("image", "label"), affine=centred(pull_map(shape, dims), shape, dims), spatial_size=dims,
                mode=(mode, "nearest"), padding_mode=("border", "zeros")),
        ScaleIntensityd("image", minv=None, maxv=None, factor=BRIGHTER - 1)])

    def run(image, labels):
        out = transform({"image": torch.from_numpy(image)[None], "label": torch.from_numpy(labels)[None]})
        return np.asarray(out["image"][0]), np.asarray(out["label"][0])

    return run


def monai_per_slice(shape, dims) -> Run:
    """MONAI used like the fused engine: slices as channels of a 2-D bicubic warp, then the slice axis resized."""
    from monai.transforms import Affined, Compose, Resized, ScaleIntensityd

    in_plane = pull_map(shape, dims)[np.ix_([0, 1, 3], [0, 1, 3])]
    warp = Affined(("image", "label"), affine=centred(in_plane, shape[:2], dims[:2]), spatial_size=dims[:2],
                   mode=("bicubic", "nearest"), padding_mode=("border", "zeros"))
    resize = Compose([Resized(("image", "label"), spatial_size=dims, mode=("trilinear", "nearest-exact"),
                              align_corners=(True, None)),
                      ScaleIntensityd("image", minv=None, maxv=None, factor=BRIGHTER - 1)])

    def run(image, labels):
        planes = warp({key: torch.from_numpy(array).permute(2, 0, 1) for key, array in (("image", image),
                                                                                         ("label", labels))})
        out = resize({key: planes[key].permute(1, 2, 0)[None] for key in ("image", "label")})
        return np.asarray(out["image"][0]), np.asarray(out["label"][0])

    return run


def torchio_affine(dims, interpolation) -> Run:
    """TorchIO's ``Affine`` neither crops nor resamples, and flips apart: flip first, then scale, rotate and shift
    about the centre (a flip then a rotation by -theta is a rotation by theta then the flip), then ``Resize``."""
    import torchio as tio

    transform = tio.Compose([
        tio.Flip(axes=(1,)),
        tio.Affine(scales=(FACTOR, FACTOR, 1), degrees=(0, 0, -DEGREES), translation=(*SHIFT, 0),
                   image_interpolation=interpolation),
        tio.Lambda(lambda tensor: tensor * BRIGHTER, types_to_apply=[tio.INTENSITY]),
        tio.Resize(tuple(dims), image_interpolation=interpolation)])

    def run(image, labels):
        subject = tio.Subject(image=tio.ScalarImage(tensor=torch.from_numpy(image)[None]),
                              label=tio.LabelMap(tensor=torch.from_numpy(labels)[None]))
        out = transform(subject)
        return out["image"].data[0].numpy(), out["label"].data[0].numpy()

    return run


def contenders(shape, dims) -> dict[str, Run]:
    return {
        "mlnb fused (OpenCV per slice)": fused(dims),
        "MONAI `Affined` 2-D per slice, bicubic (+ `Resized`)": monai_per_slice(shape, dims),
        "TorchIO `Affine`, linear": torchio_affine(dims, "linear"),
        "TorchIO `Affine`, B-spline": torchio_affine(dims, "bspline"),
        "MONAI `Affined` 3-D, bilinear": monai_3d(shape, dims, "bilinear"),
        "MONAI `Affined` 3-D, spline": monai_3d(shape, dims, 3),
        "the blog's scipy chain (the project's sequential mode)": sequential(dims),
    }


def mean_dice(labels: np.ndarray, reference: np.ndarray) -> float:
    classes = [value for value in np.unique(reference) if value != 0]
    return float(np.mean([2 * np.sum((labels == value) & (reference == value))
                          / (np.sum(labels == value) + np.sum(reference == value)) for value in classes]))


def check(name: str, output: tuple[np.ndarray, np.ndarray], reference: tuple[np.ndarray, np.ndarray],
          input_labels: np.ndarray) -> tuple[float, float]:
    """Shapes, labels drawn from the input's, the Dice of the labels against the fused engine's and the RMS
    difference of the images (inside, as a share of the range)."""
    (image, labels), (reference_image, reference_labels) = output, reference
    assert image.shape == labels.shape == reference_image.shape, (name, image.shape, labels.shape)
    as_labels = np.rint(labels).astype(reference_labels.dtype)
    assert np.array_equal(as_labels, labels), f"{name}: labels were interpolated"
    assert set(np.unique(as_labels)) <= set(np.unique(input_labels)), name
    dice = mean_dice(as_labels, reference_labels)
    assert dice > DICE_FLOOR, f"{name}: Dice {dice:.3f} against the fused labels; another transform?"
    inside = (slice(16, -16), slice(16, -16))
    difference = np.sqrt(np.mean((image[inside] - reference_image[inside]) ** 2)) / np.ptp(reference_image)
    assert difference < IMAGE_CEILING, f"{name}: image {difference:.3f} of the range off the fused one"
    return dice, float(difference)


@pytest.mark.benchmark
def test_the_fused_engine_beside_torchio_and_monai():
    pytest.importorskip("torchio", reason="TorchIO is an optional benchmark dependency (the bench extra)")
    pytest.importorskip("monai", reason="MONAI is an optional benchmark dependency (the bench extra)")
    import SimpleITK

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    SimpleITK.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    medians: dict[str, dict[str, float]] = {}
    with threadpool_limits(1):
        for size, (shape, dims, rounds) in SIZES.items():
            image, labels = synthetic_pair(shape)
            runs = contenders(shape, dims)
            reference = runs["mlnb fused (OpenCV per slice)"](image, labels)
            assert reference[0].shape == tuple(dims)
            print(f"\n{size}: against the fused engine, Dice of the labels / RMS difference of the images")
            for name, run in runs.items():  # also the warm-up
                dice, difference = check(name, run(image, labels), reference, labels)
                print(f"  {dice:.3f} / {difference:.4f}  {name}")
            times = {name: [] for name in runs}
            for _ in range(rounds):
                for name, run in runs.items():
                    start = time.perf_counter()
                    run(image, labels)
                    times[name].append(time.perf_counter() - start)
            medians[size] = {name: float(np.median(seconds)) for name, seconds in times.items()}

    print(f"\nOne thread each, median of interleaved rounds "
          f"({', '.join(f'{rounds} at {size}' for size, (_, _, rounds) in SIZES.items())}):\n")
    print(f"| contender | {' | '.join(SIZES)} |")
    print(f"| --- |{' --- |' * len(SIZES)}")
    for name in medians[next(iter(SIZES))]:
        cells = []
        for size in SIZES:
            seconds, fused_seconds = medians[size][name], medians[size]["mlnb fused (OpenCV per slice)"]
            ratio = "" if name.startswith("mlnb") else f" ({seconds / fused_seconds:.1f}×)"
            cells.append(f"{seconds * 1e3:,.1f} ms{ratio}")
        print(f"| {name} | {' | '.join(cells)} |")
