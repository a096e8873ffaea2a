"""Locate dlib's model files shipped by the ``face-recognition-models`` package.

The package's ``__init__`` imports ``pkg_resources``, which current setuptools no
longer ships, so it is found with ``importlib.util.find_spec`` and never imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from mlnb.errors import DataError

MODELS_PACKAGE = "face_recognition_models"
SHAPE_PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"


def model_path(filename: str) -> Path:
    """Path of ``filename`` inside face_recognition_models/models/."""
    spec = importlib.util.find_spec(MODELS_PACKAGE)
    if spec is None or spec.origin is None:
        raise DataError(
            f"dlib model {filename}: package {MODELS_PACKAGE!r} is not installed "
            "(pip install face-recognition-models)"
        )
    path = Path(spec.origin).parent / "models" / filename
    if not path.is_file():
        raise DataError(f"dlib model {filename}: not found at {path}")
    return path
