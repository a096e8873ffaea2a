"""Face alignment speed: `mlnb align`'s pipeline beside the OpenFace-style loop, same images, same run.

The images: CelebA-like 178x218 JPEGs in a zip, built from the astronaut, Grace
Hopper and 100 LFW faces, each jittered by the demo's model (mlnb.demo.placement).
Every path does the whole job per image: read from the zip, decode, detect,
68 landmarks, warp to 64x64, write the output.

The project and the OpenFace-style loop run on all the images in interleaved rounds
(a busy machine slows both alike); each figure is the median over the rounds, in
images per CPU-second of the one process doing everything (model loading timed
apart). The project's per-phase breakdown is what the command path itself records
(:data:`mlnb.faces.pipeline.PHASES`), summed over its rounds. The pool's rate is per
wall-second (its workers are children of the fork server, not of this process).

Run: .venv/bin/python -m pytest -s -m benchmark tests/benchmarks/test_bench_faces.py
"""

from __future__ import annotations

import csv
import io
import os
import statistics
import time
import zipfile
from collections import Counter
from pathlib import Path

import cv2
import dlib
import numpy as np
import pytest
from PIL import Image

from mlnb.data.celeba_format import FILES, IMAGES_FOLDER, image_name
from mlnb.demo.photos import encode_image, face_photos, write_zip
from mlnb.demo.placement import jittered_frame
from mlnb.faces import align
from mlnb.faces.detect import FaceLandmarker
from mlnb.faces.pipeline import ALIGNED, PHASES, aligned_results, write_results
from mlnb.faces.settings import FacesSettings
from mlnb.faces.sources import items_from_inputs
from mlnb.rng import generator

pytestmark = pytest.mark.benchmark

SEED = 20170601
IMAGES = 600
NAIVE_IMAGES = 20  # a new detector per image costs ~0.25 s
ROUNDS = 3
#: config.yaml's faces section, and the same with OpenFace's upsampling
CONFIGURED = FacesSettings.from_mapping({"size": 64, "landmarks": "inner-eyes-bottom-lip", "upsample": 0})
UPSAMPLE_1 = FacesSettings.from_mapping({"size": 64, "landmarks": "inner-eyes-bottom-lip", "upsample": 1})
INDICES = list(align.LANDMARK_SETS["inner-eyes-bottom-lip"])


@pytest.fixture(scope="module")
def celeba_zip(tmp_path_factory) -> Path:
    photos = face_photos(lfw_count=100)
    members = []
    for number in range(IMAGES):
        frame = jittered_frame(photos[number % len(photos)], generator(SEED, "bench", number))
        members.append((f"{IMAGES_FOLDER}/{image_name(number + 1)}", encode_image(frame)))
    return write_zip(tmp_path_factory.mktemp("bench") / FILES["images"], members)


def loop_align(archive: zipfile.ZipFile, members: list[str], out: Path, predictor, reuse_detector: bool) -> int:
    """The blog's way (OpenFace align-dlib): per image PIL decode, RGB HOG at upsample 1,
    largest box, 68 landmarks, 3-point affine, warp, one PNG per face."""
    target = (64 * align.minmax_template()[INDICES]).astype(np.float32)
    detector = dlib.get_frontal_face_detector()
    aligned = 0
    for number, member in enumerate(members):
        rgb = np.asarray(Image.open(io.BytesIO(archive.read(member))).convert("RGB"))
        if not reuse_detector:
            detector = dlib.get_frontal_face_detector()
        rects = detector(rgb, 1)
        if not rects:
            continue
        shape = predictor(rgb, max(rects, key=lambda rect: rect.area()))
        landmarks = np.float32([(point.x, point.y) for point in shape.parts()])
        face = cv2.warpAffine(rgb, cv2.getAffineTransform(landmarks[INDICES], target), (64, 64))
        Image.fromarray(face).save(out / f"{number:06d}.png")
        aligned += 1
    return aligned


def measure_loop(archive: Path, out: Path, count: int, predictor, reuse_detector: bool) -> dict[str, float]:
    """A loop over the first ``count`` images: images per CPU-second of this process, faces it aligned."""
    out.mkdir(exist_ok=True)
    members = [item.source for item in items_from_inputs([archive])][:count]
    with zipfile.ZipFile(archive) as opened:
        start = time.process_time()
        aligned = loop_align(opened, members, out, predictor, reuse_detector)
        used = time.process_time() - start
    return {"per_cpu_second": count / used, "aligned": aligned}


def measure_project(archive: Path, out: Path, options: FacesSettings, workers: int,
                    phase_seconds: Counter[str] | None = None) -> dict[str, float]:
    """The pipeline as `mlnb align` runs it; rates exclude loading the models (timed apart)."""
    items = items_from_inputs([archive])
    start = time.perf_counter()
    with aligned_results(items, options, workers, huge_pages=True) as results:  # as `mlnb align` does
        load = time.perf_counter() - start
        start, start_cpu = time.perf_counter(), time.process_time()
        counts = write_results(results, out, options.size, phase_seconds=phase_seconds)
        elapsed, used = time.perf_counter() - start, time.process_time() - start_cpu
    return {"per_second": len(items) / elapsed, "per_cpu_second": len(items) / used,
            "model_load": load, "aligned": counts[ALIGNED]}


def rates(runs: list[dict[str, float]]) -> str:
    return ", ".join(f"{run['per_cpu_second']:.1f}" for run in runs)


def detections(manifest: Path) -> str:
    with open(manifest, newline="") as handle:
        found = Counter(f"{row['detect_scale']}x, upsample {row['upsample']}" if row["upsample"] else row["status"]
                        for row in csv.DictReader(handle))
    return ", ".join(f"{name}: {count}" for name, count in sorted(found.items()))


def test_alignment_throughput(celeba_zip, tmp_path):
    predictor = FaceLandmarker((1,)).predictor
    phase_seconds: Counter[str] = Counter()
    project, openface = [], []
    for round_number in range(ROUNDS):  # interleaved: a busy machine slows both alike
        project.append(measure_project(celeba_zip, tmp_path / f"project_{round_number}", CONFIGURED, workers=1,
                                       phase_seconds=phase_seconds))
        openface.append(measure_loop(celeba_zip, tmp_path / f"openface_{round_number}", IMAGES, predictor,
                                     reuse_detector=True))
    per_core = statistics.median(run["per_cpu_second"] for run in project)
    openface_per_core = statistics.median(run["per_cpu_second"] for run in openface)
    ratio = statistics.median(ours["per_cpu_second"] / theirs["per_cpu_second"]
                              for ours, theirs in zip(project, openface, strict=True))
    upsample_1 = measure_project(celeba_zip, tmp_path / "upsample_1", UPSAMPLE_1, workers=1)
    two = measure_project(celeba_zip, tmp_path / "2_workers", CONFIGURED, workers=2)
    naive = measure_loop(celeba_zip, tmp_path / "naive", NAIVE_IMAGES, predictor, reuse_detector=False)
    per_image_ms = {phase: 1e3 * phase_seconds[phase] / (ROUNDS * IMAGES) for phase in PHASES}
    total_ms = sum(per_image_ms.values())

    print(f"\nfaces: {IMAGES} CelebA-like 178x218 JPEGs read from a zip; per image: read, decode, detect, "
          f"68 landmarks, warp to 64x64, write; median of {ROUNDS} interleaved rounds, images per CPU-second")
    print(f"  mlnb align as configured (upsample 0: 5/6-scale pass, then full), 1 process: {per_core:6.1f} images/s "
          f"per core  (rounds: {rates(project)})")
    print(f"  OpenFace-style loop (PIL decode, RGB HOG at upsample 1, PNG per face):    "
          f"{openface_per_core:6.1f} images/s per core  (rounds: {rates(openface)})")
    print(f"  mlnb align / OpenFace-style loop: {ratio:.1f}x (median of the rounds' ratios)")
    print("  where mlnb align's time goes (CPU, recorded on the command path): "
          + ", ".join(f"{phase} {ms:.2f} ms ({ms / total_ms:.0%})" for phase, ms in per_image_ms.items())
          + f"; {total_ms:.2f} ms per image")
    print(f"  mlnb align with upsample 1 (a third pass at upsample 1), 1 process: "
          f"{upsample_1['per_cpu_second']:6.1f} images/s per core")
    # Workers are children of the fork server, so their CPU time is not ours to count: per wall-second.
    print(f"  mlnb align, 2 worker processes: {two['per_second']:6.1f} images/s wall, "
          f"{two['per_second'] / 2:6.1f} per worker ({os.cpu_count()} CPUs here, pool start-up included)")
    print(f"  model load (once per process): {statistics.median(run['model_load'] for run in project):.2f} s")
    print(f"  naive loop (as OpenFace-style, a new HOG detector per image), {NAIVE_IMAGES} images: "
          f"{naive['per_cpu_second']:6.1f} images/s per core   mlnb align / naive = "
          f"{per_core / naive['per_cpu_second']:.0f}x")
    print("  detections as configured: " + detections(tmp_path / "project_0" / "manifest.csv"))
    print("  detections with upsample 1: " + detections(tmp_path / "upsample_1" / "manifest.csv")
          + f"; OpenFace-style loop found {openface[0]['aligned']}/{IMAGES}")

    faces = (tmp_path / "project_0" / "faces.npy").read_bytes()
    assert all((tmp_path / f"project_{n}" / "faces.npy").read_bytes() == faces for n in range(1, ROUNDS))
    assert (tmp_path / "2_workers" / "faces.npy").read_bytes() == faces
    assert project[0]["aligned"] == len(np.load(tmp_path / "project_0" / "faces.npy", mmap_mode="r"))
    assert project[0]["aligned"] <= upsample_1["aligned"] and project[0]["aligned"] >= 0.7 * IMAGES
    assert set(phase_seconds) == set(PHASES)
