"""Align a list of images: decode, detect, landmarks, warp, stream the results to disk.

Every input gives exactly one :class:`Result`, aligned or not, with the reason:
a bad image never stops the run. dlib's models are loaded once per worker
process; results come back in input order and are
written as they arrive, so memory stays flat whatever the number of images.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import multiprocessing
import os
import time
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from mlnb.errors import ConfigError, MlnbError
from mlnb.faces import align
from mlnb.faces.detect import Face, FaceLandmarker, upsample_levels
from mlnb.faces.hugepages import collapse_heap
from mlnb.faces.images import BadImage, check_header, decode_pixels
from mlnb.faces.models import SHAPE_PREDICTOR_68, model_path
from mlnb.faces.packing import stream_npy
from mlnb.faces.settings import FacesSettings
from mlnb.faces.sources import Item, ItemReader, select_items
from mlnb.io import atomic_path
from mlnb.memory import MIB, available_bytes, describe

log = logging.getLogger(__name__)

ALIGNED, NO_FACE, BAD_IMAGE = "aligned", "no-face", "bad-image"
DLIB, CELEBA_LANDMARKS = "dlib", "celeba-landmarks"

MATRIX_COLUMNS = ("m00", "m01", "m02", "m10", "m11", "m12")
MANIFEST_COLUMNS = (
    "source", "status", "reason", "method", "index", "width", "height",
    "faces", "detect_scale", "upsample", "score", "box_left", "box_top", "box_right", "box_bottom",
    *MATRIX_COLUMNS, "landmarks",
)
#: bytes per pixel of the image at detection's largest upsampling (dlib's HOG pyramid and
#: features; measured 7.4-7.5 on 1000-2000 px images at upsample 1 and 2, ~2 without upsampling)
DETECTION_BYTES_PER_PIXEL = 8
#: the decoded BGR image, its grey copy and OpenCV's decoding buffers, per input pixel
DECODE_BYTES_PER_PIXEL = 7
#: what a worker holds besides the image: dlib's models, the zip's directory (~250 MB for CelebA)
WORKER_BASELINE_BYTES = 350 * MIB
#: images handed to a worker at a time: large enough to amortise the IPC, small enough to balance
CHUNK_SIZE = 16
#: where an image's time goes, in order: zip or file read; header check and JPEG decode; grey copy and face
#: search; 68 landmarks; the map and its resampling; the crop and manifest row written
PHASES = ("read", "decode", "detect", "landmarks", "warp", "write")


class PhaseClock:
    """CPU seconds per phase of one image: each :meth:`lap` charges the time since the last one to a phase."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.process_time()

    def lap(self, phase: str) -> None:
        now = time.process_time()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self._last
        self._last = now


@dataclass
class Result:
    """What happened to one input; ``crop`` is the aligned RGB face when status is aligned."""

    source: str
    status: str
    reason: str = ""
    method: str = ""
    width: int | None = None
    height: int | None = None
    detection: Face | None = None
    matrix: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    crop: np.ndarray | None = field(default=None, repr=False)
    #: CPU seconds per phase (:data:`PHASES`) spent on this image so far
    seconds: dict[str, float] = field(default_factory=dict, repr=False)

    def manifest_row(self, index: int | None) -> dict[str, object]:
        detection = self.detection
        row: dict[str, object] = dict.fromkeys(MANIFEST_COLUMNS, "")
        row.update(source=self.source, status=self.status, reason=self.reason, method=self.method,
                   faces=0 if detection is None else detection.count)
        if index is not None:
            row["index"] = index
        if self.width is not None:
            row.update(width=self.width, height=self.height)
        if detection is not None:
            row.update(detect_scale=f"{detection.scale:.4g}", upsample=detection.upsample,
                       score=f"{detection.score:.4f}")
            row.update(zip(("box_left", "box_top", "box_right", "box_bottom"), detection.box, strict=True))
        if self.matrix is not None:
            row.update(zip(MATRIX_COLUMNS, map("{:.6g}".format, self.matrix.ravel().tolist()), strict=True))
        if self.landmarks is not None:
            row["landmarks"] = " ".join(map("{:.8g}".format, self.landmarks.ravel().tolist()))
        return row


def parse_landmarks(text: str) -> np.ndarray:
    """A manifest's ``landmarks`` cell as an Nx2 array (68 from dlib, 5 from CelebA)."""
    return np.array(text.split(), dtype=np.float64).reshape(-1, 2)


def parse_matrix(row: dict[str, str]) -> np.ndarray:
    """A manifest row's 2x3 alignment transform (input pixels -> aligned face pixels)."""
    return np.array([float(row[column]) for column in MATRIX_COLUMNS]).reshape(2, 3)


def detection_bytes(width: int, height: int, upsample: int) -> int:
    """Peak bytes of decoding an image and searching it for faces up to ``upsample``."""
    pixels = width * height
    return pixels * DECODE_BYTES_PER_PIXEL + pixels * (DETECTION_BYTES_PER_PIXEL * 4**upsample if upsample else 2)


def memory_budget(workers: int) -> int | None:
    """Bytes each of ``workers`` aligning processes may spend on one image (None: unknown)."""
    available = available_bytes()
    return None if available is None else max(available // workers - WORKER_BASELINE_BYTES, 0)


class Aligner:
    """Aligns one item at a time with models loaded once (one Aligner per process).

    An image whose decoding and detection would need more than ``memory_budget``
    bytes is recorded as a bad image with the estimate, not attempted: one huge
    photo must not take the shard down with ``std::bad_alloc``.
    """

    def __init__(self, settings: FacesSettings, memory_budget: int | None = None):
        self.settings = settings
        self.memory_budget = memory_budget
        self.indices = align.landmark_indices(settings.landmarks)
        self.landmarker = FaceLandmarker(upsample_levels(settings.upsample))
        self.reader = ItemReader()

    def __call__(self, item: Item) -> Result:
        clock = PhaseClock()
        result = self._align_item(item, clock)
        result.source, result.seconds = item.source, clock.seconds
        return result

    def _align_item(self, item: Item, clock: PhaseClock) -> Result:
        try:
            data = self.reader.read(item)
        except KeyError:
            return Result(item.source, BAD_IMAGE, f"unreadable: no such member in {item.archive}")
        except (OSError, zipfile.BadZipFile, EOFError) as error:
            return Result(item.source, BAD_IMAGE, f"unreadable: {error}")
        finally:
            clock.lap("read")
        try:
            self._check_memory(*check_header(data, self.settings.min_side))
            image = decode_pixels(data)
        except BadImage as bad:
            return Result(item.source, BAD_IMAGE, str(bad))
        finally:
            clock.lap("decode")
        return self.align_image(image, item.celeba_landmarks(), clock)

    def _check_memory(self, width: int, height: int) -> None:
        needed = detection_bytes(width, height, self.settings.upsample)
        if self.memory_budget is not None and needed > self.memory_budget:
            raise BadImage("too-large-for-memory", f"{width}x{height} px needs about {describe(needed)} to detect "
                           f"faces at upsample {self.settings.upsample}; this worker has "
                           f"{describe(self.memory_budget)}")

    def align_image(self, image: np.ndarray, celeba: np.ndarray | None = None,
                    clock: PhaseClock | None = None) -> Result:
        """Align a BGR image; CelebA's five landmarks are the fallback when dlib finds no face.

        ``clock`` (the image's, from :meth:`__call__`) is charged the detect, landmarks and warp phases.
        """
        clock = clock or PhaseClock()
        height, width = image.shape[:2]
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        found = Result("", NO_FACE, width=width, height=height, detection=self.landmarker.find_face(gray))
        clock.lap("detect")
        if found.detection is None:
            found.reason = f"no face detected at upsample {'/'.join(map(str, self.landmarker.upsamples))}"
        else:
            landmarks = self.landmarker.landmarks(gray, found.detection.box)
            clock.lap("landmarks")
            matrix = align.openface_affine(landmarks, self.indices, self.settings.size)
            if align.is_usable(matrix):
                return self._aligned(found, image, DLIB, matrix, landmarks, clock)
            found.reason = "dlib's landmarks of the face are degenerate"
        if celeba is None:
            found.reason += "; no CelebA landmarks to fall back on"
            return found
        matrix = align.celeba_similarity(celeba, self.settings.size)
        if not align.is_usable(matrix):
            found.reason += "; CelebA landmarks are degenerate"
            return found
        return self._aligned(found, image, CELEBA_LANDMARKS, matrix, celeba, clock)

    def _aligned(self, found: Result, image: np.ndarray, method: str, matrix: np.ndarray,
                 landmarks: np.ndarray, clock: PhaseClock) -> Result:
        crop = align.warp_face(image, matrix, self.settings.size)
        found.status, found.method, found.matrix, found.landmarks = ALIGNED, method, matrix, landmarks
        found.crop = np.ascontiguousarray(crop[:, :, ::-1])  # BGR -> RGB
        clock.lap("warp")
        return found


#: the Aligner of a worker process, built by its initializer
_worker: Aligner | None = None


def _start_worker(settings: FacesSettings, budget: int | None) -> None:
    global _worker
    cv2.setNumThreads(1)  # parallelism comes from the processes
    _worker = Aligner(settings, budget)
    collapse_heap()  # the worker is a process of its own


def _align_in_worker(item: Item) -> Result:
    return _worker(item)


def _worker_context() -> multiprocessing.context.BaseContext:
    """Workers start from a clean fork server, never by forking this process.

    Forking a process whose OpenCV, OpenMP or BLAS thread pools are already running
    can deadlock the child; the fork server has started none. Preloading this
    module there means each worker only has to load the models (~1 s).
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def _until_a_worker_dies(results: Iterator[Result]) -> Iterator[Result]:
    """Pass results through; a dead worker (crash, out of memory) fails the job clearly.

    (multiprocessing.Pool would replace the worker and wait forever for its chunk.)
    """
    try:
        yield from results
    except BrokenProcessPool as error:
        raise MlnbError("a face-alignment worker process died (a crash in dlib/OpenCV, or killed for memory); "
                        "nothing was written, rerun the job or lower --workers/--upsample") from error


@contextlib.contextmanager
def aligned_results(items: Sequence[Item], settings: FacesSettings, workers: int = 1,
                    huge_pages: bool = False) -> Iterator[Iterator[Result]]:
    """Yield an iterator of the results for ``items``, in input order.

    ``workers`` 1 aligns in this process (its heap moved to huge pages with ``huge_pages``: only in a
    process the caller owns, such as ``mlnb align``'s); more starts that many worker processes,
    each loading the models once and moving its heap to huge pages. The model file is checked here first (settings
    check themselves), so a mistake fails with its own message, not as a broken pool.
    """
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    budget = memory_budget(workers)
    if workers == 1:
        cv2.setNumThreads(1)  # the job's one thread: OpenCV would otherwise start one per core
        aligner = Aligner(settings, budget)
        if huge_pages:
            collapse_heap()
        try:
            yield map(aligner, items)
        finally:
            aligner.reader.close()
        return
    model_path(SHAPE_PREDICTOR_68)
    with ProcessPoolExecutor(workers, mp_context=_worker_context(), initializer=_start_worker,
                             initargs=(settings, budget)) as pool:
        yield _until_a_worker_dies(pool.map(_align_in_worker, items, chunksize=CHUNK_SIZE))


@contextlib.contextmanager
def manifest_writer(path: str | os.PathLike) -> Iterator[csv.DictWriter]:
    """A CSV writer with the manifest's columns; the file appears only when complete."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        yield writer


def write_results(results: Iterable[Result], out_dir: str | os.PathLike, size: int, total: int | None = None,
                  phase_seconds: Counter[str] | None = None) -> dict[str, int]:
    """Stream results to ``out_dir``/faces.npy and manifest.csv; return counts per status.

    ``phase_seconds``, when given, gains each result's CPU seconds per phase and this process's for writing.
    """
    out_dir = Path(out_dir)
    counts = dict.fromkeys((ALIGNED, NO_FACE, BAD_IMAGE), 0)
    seconds = Counter() if phase_seconds is None else phase_seconds
    with manifest_writer(out_dir / "manifest.csv") as manifest, \
            stream_npy(out_dir / "faces.npy", (size, size, 3)) as faces:
        for result in tqdm(results, total=total, desc="align", unit="img", mininterval=2):
            start = time.process_time()
            index = None
            if result.crop is not None:
                index = faces.count
                faces.append(result.crop)
            manifest.writerow(result.manifest_row(index))
            counts[result.status] += 1
            seconds.update(result.seconds)
            seconds["write"] += time.process_time() - start
    return counts


def describe_phases(phase_seconds: Counter[str], images: int) -> str:
    """Milliseconds per image of each phase, e.g. ``read 0.02, decode 0.21, ... ms of CPU per image``."""
    return ", ".join(f"{phase} {1e3 * phase_seconds[phase] / max(images, 1):.2f}" for phase in PHASES) + \
        " ms of CPU per image"


def align_faces(inputs: Sequence[str | Path], out: str | os.PathLike, settings: FacesSettings,
                index: str | Path | None = None, shard: int | None = None, huge_pages: bool = False) -> dict[str, int]:
    """Align the images of ``inputs`` into ``out``/faces.npy and manifest.csv with ``settings.threads`` workers;
    return counts per status. ``index`` and ``shard`` choose the images (:func:`mlnb.faces.sources.select_items`);
    ``huge_pages`` as :func:`aligned_results` takes it."""
    items = select_items(inputs, index, shard, settings.shards)
    which = "all inputs" if shard is None else f"shard {shard} of {settings.shards}"
    log.info("aligning %d images (%s) with %d worker(s)", len(items), which, settings.threads)
    start = time.perf_counter()
    phase_seconds: Counter[str] = Counter()
    with aligned_results(items, settings, settings.threads, huge_pages) as results:
        counts = write_results(results, out, settings.size, total=len(items), phase_seconds=phase_seconds)
    elapsed = time.perf_counter() - start
    log.info("%s in %.1f s (%.1f images/s); wrote %s/faces.npy and manifest.csv",
             ", ".join(f"{n} {status}" for status, n in counts.items()), elapsed,
             len(items) / max(elapsed, 1e-9), out)
    log.info("where the time went: %s", describe_phases(phase_seconds, len(items)))
    return counts
