"""The file types augmentation reads and writes, told by name alone (no imaging library needed)."""

from __future__ import annotations

from pathlib import Path

from mlnb.errors import DataError

NIFTI_EXTENSIONS = (".nii.gz", ".nii")
PICTURE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def split_name(path: str | Path) -> tuple[str, str]:
    """('la_003', '.nii.gz') for 'dir/la_003.nii.gz'; DataError for unsupported types."""
    name = Path(path).name
    for extension in NIFTI_EXTENSIONS + PICTURE_EXTENSIONS:
        if name.lower().endswith(extension) and len(name) > len(extension):
            return name[: -len(extension)], name[-len(extension):]
    raise DataError(f"{path}: unsupported file type (expected one of "
                    f"{', '.join(NIFTI_EXTENSIONS + PICTURE_EXTENSIONS)})")


def is_nifti(extension: str) -> bool:
    return extension.lower() in NIFTI_EXTENSIONS
