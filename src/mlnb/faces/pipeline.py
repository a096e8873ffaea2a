"""Align a list of images: decode, detect, landmarks, warp, stream the results to disk.

Every input gives exactly one :class:`Result`, aligned or not, with the reason:
a bad image never stops the run. Work is spread over worker processes that each
load dlib's models once; results come back in input order and are written as
they arrive, so memory stays flat whatever the number of images.
"""

from __future__ import annotations

import contextlib
import csv
import multiprocessing
import os
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from mlnb.errors import ConfigError
from mlnb.faces import align
from mlnb.faces.detect import FaceLandmarker, upsample_levels
from mlnb.faces.images import BadImage, decode_bgr
from mlnb.faces.models import SHAPE_PREDICTOR_68, model_path
from mlnb.faces.packing import stream_npy
from mlnb.faces.sources import Item, ItemReader
from mlnb.io import atomic_path

ALIGNED, NO_FACE, BAD_IMAGE = "aligned", "no-face", "bad-image"
DLIB, CELEBA_LANDMARKS = "dlib", "celeba-landmarks"

MANIFEST_COLUMNS = (
    "source", "status", "reason", "method", "index", "width", "height",
    "faces", "upsample", "score", "box_left", "box_top", "box_right", "box_bottom",
    "m00", "m01", "m02", "m10", "m11", "m12", "landmarks",
)
#: images handed to a worker at a time: large enough to amortise the IPC, small enough to balance
CHUNK_SIZE = 16


@dataclass(frozen=True)
class AlignOptions:
    """Checked on construction, so that worker processes never start with bad options."""

    size: int = 64
    landmarks: str = "inner-eyes-bottom-lip"
    upsample: int = 1
    min_side: int = 32

    def __post_init__(self):
        if not 16 <= self.size <= 1024:
            raise ConfigError(f"face size must be between 16 and 1024 px, got {self.size}")
        if self.min_side < 1:
            raise ConfigError(f"minimum image side must be at least 1 px, got {self.min_side}")
        align.landmark_indices(self.landmarks)
        upsample_levels(self.upsample)


@dataclass
class Result:
    """What happened to one input. ``face`` is the aligned RGB crop when status is aligned."""

    source: str
    status: str
    reason: str = ""
    method: str = ""
    width: int | None = None
    height: int | None = None
    faces: int = 0
    upsample: int | None = None
    score: float | None = None
    box: tuple[int, int, int, int] | None = None
    matrix: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    face: np.ndarray | None = field(default=None, repr=False)

    def manifest_row(self, index: int | None) -> dict[str, object]:
        row: dict[str, object] = {
            "source": self.source, "status": self.status, "reason": self.reason, "method": self.method,
            "index": "" if index is None else index,
            "width": _blank(self.width), "height": _blank(self.height), "faces": self.faces,
            "upsample": _blank(self.upsample),
            "score": "" if self.score is None else f"{self.score:.4f}",
            "landmarks": "" if self.landmarks is None else " ".join(f"{v:.8g}" for v in self.landmarks.ravel()),
        }
        box = self.box or ("",) * 4
        row.update(zip(("box_left", "box_top", "box_right", "box_bottom"), box, strict=True))
        matrix = ("",) * 6 if self.matrix is None else (f"{v:.6g}" for v in self.matrix.ravel())
        row.update(zip(("m00", "m01", "m02", "m10", "m11", "m12"), matrix, strict=True))
        return row


def _blank(value: object) -> object:
    return "" if value is None else value


def parse_landmarks(text: str) -> np.ndarray:
    """A manifest's ``landmarks`` cell as an Nx2 array (68 from dlib, 5 from CelebA)."""
    return np.array(text.split(), dtype=np.float64).reshape(-1, 2)


class Aligner:
    """Aligns one item at a time with models loaded once (one Aligner per process)."""

    def __init__(self, options: AlignOptions):
        self.options = options
        self.indices = align.landmark_indices(options.landmarks)
        self.landmarker = FaceLandmarker(upsample_levels(options.upsample))
        self.reader = ItemReader()

    def __call__(self, item: Item) -> Result:
        try:
            data = self.reader.read(item)
        except (OSError, KeyError, zipfile.BadZipFile, EOFError) as error:
            return Result(item.source, BAD_IMAGE, f"unreadable: {error}")
        try:
            image = decode_bgr(data, self.options.min_side)
        except BadImage as bad:
            return Result(item.source, BAD_IMAGE, str(bad))
        result = self.align_image(image, item.celeba_landmarks())
        result.source = item.source
        return result

    def align_image(self, image: np.ndarray, celeba: np.ndarray | None = None) -> Result:
        """Align a BGR image; CelebA's five landmarks are the fallback when dlib finds no face."""
        height, width = image.shape[:2]
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        face = self.landmarker.find_face(gray)
        if face is None:
            reason = f"no face detected at upsample {'/'.join(map(str, self.landmarker.upsamples))}"
        else:
            landmarks = self.landmarker.landmarks(gray, face.box)
            matrix = align.openface_affine(landmarks, self.indices, self.options.size)
            if align.is_usable(matrix):
                return self._aligned(image, matrix, landmarks, DLIB, "", face)
            reason = "dlib's landmarks of the face are degenerate"
        if celeba is not None:
            matrix = align.celeba_similarity(celeba, self.options.size)
            if align.is_usable(matrix):
                return self._aligned(image, matrix, celeba, CELEBA_LANDMARKS, reason, face)
            reason += "; CelebA landmarks are degenerate"
        else:
            reason += "; no CelebA landmarks to fall back on"
        return Result("", NO_FACE, reason, width=width, height=height, faces=0 if face is None else face.count)

    def _aligned(self, image, matrix, landmarks, method, reason, face) -> Result:
        crop = align.warp_face(image, matrix, self.options.size)
        height, width = image.shape[:2]
        return Result(
            "", ALIGNED, reason, method, width=width, height=height,
            faces=0 if face is None else face.count,
            upsample=None if face is None else face.upsample,
            score=None if face is None else face.score,
            box=None if face is None else face.box,
            matrix=matrix, landmarks=landmarks,
            face=np.ascontiguousarray(crop[:, :, ::-1]),  # BGR -> RGB
        )


_worker: Aligner | None = None


def _start_worker(options: AlignOptions) -> None:
    global _worker
    cv2.setNumThreads(1)  # parallelism comes from the processes
    _worker = Aligner(options)


def _align_in_worker(item: Item) -> Result:
    return _worker(item)


def align_items(items: Sequence[Item], options: AlignOptions, workers: int = 1) -> Iterator[Result]:
    """Results for ``items`` in input order, from ``workers`` processes (1 = this process)."""
    if workers <= 1 or len(items) <= CHUNK_SIZE:
        aligner = Aligner(options)
        try:
            yield from map(aligner, items)
        finally:
            aligner.reader.close()
        return
    model_path(SHAPE_PREDICTOR_68)  # fail here, not in workers that the pool would restart forever
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_start_worker, initargs=(options,)) as pool:
        yield from pool.imap(_align_in_worker, items, chunksize=CHUNK_SIZE)


@contextlib.contextmanager
def manifest_writer(path: str | os.PathLike) -> Iterator[csv.DictWriter]:
    """A CSV writer with the manifest's columns; the file appears only when complete."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        yield writer


def write_results(results: Iterable[Result], out_dir: str | os.PathLike, size: int,
                  total: int | None = None) -> dict[str, int]:
    """Stream results to ``out_dir``/faces.npy and manifest.csv; return counts per status."""
    out_dir = Path(out_dir)
    counts = dict.fromkeys((ALIGNED, NO_FACE, BAD_IMAGE), 0)
    with manifest_writer(out_dir / "manifest.csv") as manifest, \
            stream_npy(out_dir / "faces.npy", (size, size, 3)) as faces:
        for result in tqdm(results, total=total, desc="align", unit="img", mininterval=2):
            index = None
            if result.face is not None:
                index = faces.count
                faces.append(result.face)
            manifest.writerow(result.manifest_row(index))
            counts[result.status] += 1
    return counts
