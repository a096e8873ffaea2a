"""The Task02_Heart replica: an MSD-style tar of crops of nilearn's MNI152 template.

``imagesTr/``, ``labelsTr/`` and ``dataset.json``, with a tissue label map
(0 background, 1 grey matter, 2 white matter, 3 other brain).
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import numpy as np

from mlnb.demo.resources import PackageResource
from mlnb.io import atomic_path
from mlnb.rng import generator


def mni_volume_and_labels() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[PackageResource]]:
    """The 2 mm template, its tissue labels, its affine, and the package files they come from."""
    from nilearn import datasets
    from nilearn.datasets import struct

    template = datasets.load_mni152_template(resolution=2)
    image = np.asarray(template.dataobj, dtype=np.float32)
    brain, grey, white = (np.asarray(load(resolution=2).dataobj) > 0 for load in (
        datasets.load_mni152_brain_mask, datasets.load_mni152_gm_mask, datasets.load_mni152_wm_mask))
    labels = np.zeros(image.shape, np.uint8)
    labels[brain] = 3
    labels[white] = 2
    labels[grey & ~white] = 1
    sources = [PackageResource.at("nilearn", path) for path in (
        struct.MNI152_FILE_PATH, struct.GM_MNI152_FILE_PATH, struct.WM_MNI152_FILE_PATH)]
    return image, labels, template.affine, sources


def _nifti_bytes(array: np.ndarray, affine: np.ndarray) -> bytes:
    import nibabel as nib

    image = nib.Nifti1Image(array, affine)
    image.header.set_xyzt_units("mm")
    raw = image.to_bytes()
    return gzip.compress(raw, mtime=0)


def build(out: Path, seed: int, cases: int = 4, crop: tuple[int, int, int] = (88, 104, 40)) -> dict:
    image, labels, affine, sources = mni_volume_and_labels()
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
    return {"sources": [source.record() for source in sources], "cases": records}
