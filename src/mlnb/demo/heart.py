"""The Task02_Heart replica: an MSD-style tar of jittered crops of nilearn's MNI152 template.

``imagesTr/``, ``labelsTr/`` and ``dataset.json``, with a tissue label map: 0 background, 1 grey matter (and
the rest of the brain outside the white matter: alone, that rest is too thin and scattered a label to learn),
2 white matter. Each case is the template seen as a patient is scanned (:class:`CaseJitter`, drawn from
(seed, "replica", "heart", case) and recorded): turned in-plane and maybe mirrored, cut to its own field of
view, with its own contrast.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mlnb.demo.resources import PackageResource
from mlnb.io import atomic_path
from mlnb.rng import generator

#: cases in the replica: enough for two cross-validation folds of the segmentation stage
CASES = 8
#: the jitter's ranges: in-plane (i, j) rotation within +-degrees, field of view (i, j, k) in voxels,
#: intensity gain and gamma
MAX_ROTATION_DEGREES = 15.0
FIELD_OF_VIEW = ((72, 88), (88, 104), (32, 44))
GAIN_RANGE = (0.85, 1.15)
GAMMA_RANGE = (0.8, 1.25)
#: template slices every field of view holds (well inside the brain)
CORE_SLICES = (30, 50)
#: stored intensity of the template's brightest voxel (before the gain)
INTENSITY_SCALE = 1000


def mni_volume_and_labels() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[PackageResource]]:
    """The 2 mm template, its tissue labels, its affine, and the package files they come from."""
    from nilearn import datasets
    from nilearn.datasets import struct

    template = datasets.load_mni152_template(resolution=2)
    image = np.asarray(template.dataobj, dtype=np.float32)
    brain, grey, white = (np.asarray(load(resolution=2).dataobj) > 0 for load in (
        datasets.load_mni152_brain_mask, datasets.load_mni152_gm_mask, datasets.load_mni152_wm_mask))
    labels = np.zeros(image.shape, np.uint8)
    labels[brain | grey] = 1
    labels[white] = 2
    sources = [PackageResource.at("nilearn", path) for path in (
        struct.MNI152_FILE_PATH, struct.GM_MNI152_FILE_PATH, struct.WM_MNI152_FILE_PATH)]
    return image, labels, template.affine, sources


@dataclass(frozen=True)
class CaseJitter:
    """One case's pose (an in-plane rotation about the template's centre, a mirrored i axis), field of view
    (the crop's corner and size, in template voxels) and contrast (intensity ** gamma x gain)."""

    rotation_degrees: float
    flip_x: bool
    corner: tuple[int, int, int]
    crop: tuple[int, int, int]
    gain: float
    gamma: float

    @classmethod
    def draw(cls, rng: np.random.Generator, shape: tuple[int, ...]) -> CaseJitter:
        rotation = float(rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES))
        flip = bool(rng.random() < 0.5)
        crop = tuple(int(rng.integers(low, high + 1)) for low, high in FIELD_OF_VIEW)
        (rows, cols, slices), (core_start, core_stop) = shape, CORE_SLICES
        corner = (int(rng.integers(0, rows - crop[0] + 1)), int(rng.integers(0, cols - crop[1] + 1)),
                  int(rng.integers(max(0, core_stop - crop[2]), min(core_start, slices - crop[2]) + 1)))
        gain, gamma = float(rng.uniform(*GAIN_RANGE)), float(rng.uniform(*GAMMA_RANGE))
        return cls(rotation, flip, corner, crop, gain, gamma)

    def apply(self, image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The case's int16 volume and uint8 label map (image linear, labels nearest)."""
        from scipy import ndimage

        turn = {"angle": self.rotation_degrees, "axes": (0, 1), "reshape": False, "mode": "constant", "cval": 0}
        turned, turned_labels = ndimage.rotate(image, order=1, **turn), ndimage.rotate(labels, order=0, **turn)
        window = tuple(slice(start, start + size) for start, size in zip(self.corner, self.crop, strict=True))
        volume = np.clip(turned[window], 0, None) ** self.gamma * INTENSITY_SCALE * self.gain
        volume, label = np.round(volume).astype(np.int16), turned_labels[window]
        if self.flip_x:
            volume, label = volume[::-1], label[::-1]
        return np.ascontiguousarray(volume), np.ascontiguousarray(label)

    def record(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


def _nifti_bytes(array: np.ndarray, affine: np.ndarray) -> bytes:
    import nibabel as nib

    image = nib.Nifti1Image(array, affine)
    image.header.set_xyzt_units("mm")
    raw = image.to_bytes()
    return gzip.compress(raw, mtime=0)


def build(out: Path, seed: int, cases: int = CASES) -> dict:
    image, labels, affine, sources = mni_volume_and_labels()
    files: dict[str, bytes] = {}
    records, training = {}, []
    for number in range(1, cases + 1):
        case = f"la_{number:03d}"
        jitter = CaseJitter.draw(generator(seed, "replica", "heart", case), image.shape)
        volume, label = jitter.apply(image, labels)
        case_affine = affine.copy()
        case_affine[:3, 3] += affine[:3, :3] @ np.array(jitter.corner)
        files[f"imagesTr/{case}.nii.gz"] = _nifti_bytes(volume, case_affine)
        files[f"labelsTr/{case}.nii.gz"] = _nifti_bytes(label, case_affine)
        training.append({"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"})
        records[case] = jitter.record()
    dataset = {
        "name": "Task02_Heart offline replica",
        "description": "Jittered crops of the MNI152 2 mm template (nilearn) with a tissue label map; "
                       "stands in for MSD Task02_Heart offline.",
        "tensorImageSize": "3D",
        "modality": {"0": "MRI"},
        "labels": {"0": "background", "1": "grey matter", "2": "white matter"},
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
