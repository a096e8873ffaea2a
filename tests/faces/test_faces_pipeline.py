from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from mlnb.faces import align
from mlnb.faces.pipeline import ALIGNED, CELEBA_LANDMARKS, DLIB, NO_FACE, Aligner
from mlnb.faces.settings import FacesSettings

#: re-detection on an aligned crop: pad it (edges replicated) and upscale it, as
#: dlib's detector needs a margin around the face and faces of 80 px or more
REDETECT_PAD, REDETECT_SCALE = 32, 3
#: brows, eyes, nose and mouth
INNER_POINTS = slice(17, 68)


def bgr(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[:, :, ::-1])


def redetect(aligner: Aligner, crop: np.ndarray) -> np.ndarray | None:
    """dlib's 68 landmarks found afresh on an aligned RGB crop, in crop pixels."""
    padded = cv2.copyMakeBorder(crop, *(REDETECT_PAD,) * 4, cv2.BORDER_REPLICATE)
    gray = cv2.cvtColor(cv2.resize(padded, None, fx=REDETECT_SCALE, fy=REDETECT_SCALE,
                                   interpolation=cv2.INTER_CUBIC), cv2.COLOR_RGB2GRAY)
    face = aligner.landmarker.find_face(gray)
    if face is None:
        return None
    return aligner.landmarker.landmarks(gray, face.box) / REDETECT_SCALE - REDETECT_PAD


@pytest.mark.parametrize("landmark_set", sorted(align.LANDMARK_SETS))
def test_redetected_landmarks_of_aligned_faces_sit_on_the_template(replica_faces, aligner, landmark_set):
    """dlib run again on each crop that dlib's landmarks aligned finds the chosen landmarks on the template.

    The share re-detected is of the crops aligned from dlib's landmarks: frames where dlib
    found no face in the first place (7 of the 32 replicas, all 25-px LFW faces scaled up)
    are aligned from CelebA's landmarks or not at all, and say nothing about this geometry
    (counting them made the outer-eyes-nose case pass or fail on the replicas' jitter).
    """
    options = FacesSettings.from_mapping({**aligner.settings.as_dict(), "landmarks": landmark_set})
    this_aligner = aligner if options == aligner.settings else Aligner(options)
    indices = list(align.LANDMARK_SETS[landmark_set])
    target = align.template_points(tuple(indices), options.size)
    errors, dlib_aligned = [], 0
    for _, face in replica_faces:
        result = this_aligner.align_image(bgr(face))
        if result.method != DLIB:
            continue
        dlib_aligned += 1
        landmarks = redetect(this_aligner, result.crop)
        if landmarks is not None:
            errors.append(np.linalg.norm(landmarks[indices] - target, axis=1).mean())
    assert dlib_aligned >= 0.7 * len(replica_faces)
    # measured: inner-eyes-bottom-lip 25 of 25, outer-eyes-nose 20 of 25 (the misses are LFW faces)
    assert len(errors) >= 0.75 * dlib_aligned, f"{len(errors)} of {dlib_aligned} re-detected"
    assert np.mean(errors) < 1.5, f"mean error {np.mean(errors):.2f} px over {len(errors)} faces"


@pytest.mark.parametrize(("angle", "scale"), [(15.0, 0.8), (-20.0, 1.25)])
def test_alignment_undoes_a_known_similarity(photos, aligner, angle, scale):
    for photo in photos[:2]:  # the astronaut and Grace Hopper: sharp photos
        height, width = photo.image.shape[:2]
        known = align.similarity(angle, scale, photo.face[:2], (width / 2, height / 2))
        moved = cv2.warpAffine(photo.image, known, (width, height), borderMode=cv2.BORDER_REFLECT_101)
        original, transformed = aligner.align_image(bgr(photo.image)), aligner.align_image(bgr(moved))
        assert original.method == transformed.method == DLIB
        # the original's landmarks, followed through the known similarity, land where they did
        in_original = align.apply_affine(original.matrix, original.landmarks)
        in_transformed = align.apply_affine(transformed.matrix, align.apply_affine(known, original.landmarks))
        assert np.linalg.norm(in_original - in_transformed, axis=1).mean() < 1.5, photo.name
        # and the two aligned faces show their landmarks in the same places (inner points:
        # the jaw line runs along the crop's edge, where re-detection is loose)
        first, second = (redetect(aligner, result.crop)[INNER_POINTS] for result in (original, transformed))
        assert np.linalg.norm(first - second, axis=1).mean() < 1.5, photo.name


def test_output_is_the_rgb_warp_of_the_input(replica_faces, aligner):
    rgb = replica_faces[1][1]
    result = aligner.align_image(bgr(rgb))
    assert result.status == ALIGNED and result.crop.shape == (64, 64, 3) and result.crop.dtype == np.uint8
    np.testing.assert_array_equal(result.crop, align.warp_face(rgb, result.matrix, 64))


def test_celeba_landmarks_align_a_face_dlib_cannot_find(no_face, aligner):
    landmarks = align.celeba_template_points(64) * 1.6 + [38, 70]
    result = aligner.align_image(bgr(no_face), celeba=landmarks)
    assert (result.status, result.method) == (ALIGNED, CELEBA_LANDMARKS)
    assert result.reason == "no face detected at upsample 0/1"
    np.testing.assert_allclose(result.matrix, align.celeba_similarity(landmarks, 64))
    np.testing.assert_array_equal(result.landmarks, landmarks)


def test_no_face_and_no_landmarks_is_recorded(no_face, aligner):
    result = aligner.align_image(bgr(no_face))
    assert (result.status, result.method, result.crop) == (NO_FACE, "", None)
    assert result.reason == "no face detected at upsample 0/1; no CelebA landmarks to fall back on"


def test_celeba_fallback_crops_nearly_what_dlib_crops(replica_faces, aligner):
    """With CelebA's five points placed where dlib's 68 say, both methods agree within a few px."""
    indices = list(align.LANDMARK_SETS["inner-eyes-bottom-lip"])
    distances = []
    for _, face in replica_faces:
        result = aligner.align_image(bgr(face))
        if result.method == DLIB:
            fallback = align.celeba_similarity(align.celeba_points(result.landmarks), 64)
            mapped = align.apply_affine(fallback, result.landmarks[indices])
            distances.append(np.linalg.norm(mapped - align.template_points(tuple(indices), 64), axis=1).mean())
    assert np.mean(distances) < 3.0


def reader_of(path: Path) -> int | None:
    """The pid of another process holding ``path`` open (from /proc), or None."""
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        with contextlib.suppress(OSError):
            if os.readlink(fd) == str(path) and int(fd.parts[2]) != os.getpid():
                return int(fd.parts[2])
    return None


def test_a_dead_worker_fails_the_job_clearly(tmp_path):
    """A worker process killed half-way (as the kernel's OOM killer would) fails the job with one line."""
    import signal
    import threading

    from mlnb.errors import MlnbError
    from mlnb.faces.pipeline import aligned_results
    from mlnb.faces.sources import Item

    fifo = tmp_path / "never_ends.jpg"
    os.mkfifo(fifo)
    killed = []

    def kill_the_reader():
        with open(fifo, "wb"):  # opens once a worker reads; the worker then waits for data forever
            deadline = time.monotonic() + 60
            while not killed and time.monotonic() < deadline:
                pid = reader_of(fifo)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                time.sleep(0.05)

    killer = threading.Thread(target=kill_the_reader, daemon=True)
    killer.start()
    with pytest.raises(MlnbError, match="a face-alignment worker process died"):
        with aligned_results([Item(str(fifo))], FacesSettings.from_mapping({}), workers=2) as results:
            list(results)
    killer.join(5)
    assert killed


def test_missing_model_fails_before_workers_start(monkeypatch):
    from mlnb.errors import DataError
    from mlnb.faces import pipeline

    def missing(filename):
        raise DataError(f"dlib model {filename}: not found")

    monkeypatch.setattr(pipeline, "model_path", missing)
    with pytest.raises(DataError, match="not found"):
        with pipeline.aligned_results([], FacesSettings.from_mapping({}), workers=2):
            pass


def test_an_image_too_large_for_the_workers_memory_is_recorded_and_skipped(replica_faces, aligner, tmp_path):
    from mlnb.demo.photos import encode_image
    from mlnb.faces.pipeline import BAD_IMAGE, detection_bytes
    from mlnb.faces.sources import Item

    paths = []
    for name, size in (("large", (1400, 1700)), ("celeba-sized", (178, 218))):
        paths.append(tmp_path / f"{name}.jpg")
        paths[-1].write_bytes(encode_image(cv2.resize(replica_faces[0][1], size)))
    budget = detection_bytes(178, 218, 1) * 2  # room for a CelebA-sized image, not for the large one
    limited = Aligner(aligner.settings, memory_budget=budget)
    large, small = (limited(Item(str(path))) for path in paths)
    assert large.status == BAD_IMAGE
    assert large.reason.startswith("too-large-for-memory: 1400x1700 px needs about ")
    assert "to detect faces at upsample 1; this worker has" in large.reason
    assert small.status == ALIGNED


def test_each_result_records_where_its_time_went_and_writing_adds_its_own(celeba_replica, aligner, tmp_path):
    from collections import Counter

    from mlnb.faces.pipeline import PHASES, describe_phases, write_results
    from mlnb.faces.sources import items_from_index

    items = items_from_index(celeba_replica.archive, celeba_replica.index)
    start = time.process_time()
    results = [aligner(item) for item in items]
    used = time.process_time() - start
    by_source = {result.source: result for result in results}
    dlib_aligned = next(result for result in results if result.method == DLIB)
    assert set(dlib_aligned.seconds) == {"read", "decode", "detect", "landmarks", "warp"}
    assert dlib_aligned.seconds["detect"] > 0 and dlib_aligned.seconds["landmarks"] > 0
    assert set(by_source["bad/truncated.jpg"].seconds) == {"read", "decode"}
    assert set(by_source[celeba_replica.missing_member].seconds) == {"read"}
    # the phases are disjoint stretches of the loop's CPU time
    assert all(seconds >= 0 for result in results for seconds in result.seconds.values())
    assert sum(sum(result.seconds.values()) for result in results) <= used
    phase_seconds = Counter()
    write_results(results, tmp_path, 64, phase_seconds=phase_seconds)
    assert set(phase_seconds) == set(PHASES) and phase_seconds["write"] > 0
    assert phase_seconds["detect"] == pytest.approx(sum(result.seconds.get("detect", 0) for result in results))
    assert describe_phases(Counter({"read": 0.002, "detect": 0.010}), 2) == \
        "read 1.00, decode 0.00, detect 5.00, landmarks 0.00, warp 0.00, write 0.00 ms of CPU per image"
