"""Locate dlib's model files shipped by the ``face-recognition-models`` package.

The package's ``__init__`` imports ``pkg_resources``, which current setuptools no
longer ships, so it is found with ``importlib.util.find_spec`` and never imported.
"""

from __future__ import annotations

from pathlib import Path

from mlnb.io import package_file

MODELS_PACKAGE = "face_recognition_models"
SHAPE_PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"


def model_path(filename: str) -> Path:
    """Path of ``filename`` inside face_recognition_models/models/."""
    return package_file(MODELS_PACKAGE, "models", filename)
