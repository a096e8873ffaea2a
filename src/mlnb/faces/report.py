"""The gathered faces' preview grid, and their summary and preview in MLflow (``mlnb report-faces``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from mlnb import tracking
from mlnb.errors import DataError
from mlnb.faces.gather import load_faces
from mlnb.faces.settings import FacesSettings
from mlnb.io import atomic_path
from mlnb.preview import image_grid


def preview_grid(faces: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` faces spread evenly over the set, tiled in a near-square grid."""
    if len(faces) == 0:
        return np.zeros((1, 1, 3), dtype=np.uint8)
    picks = np.unique(np.linspace(0, len(faces) - 1, min(count, len(faces))).round().astype(int))
    return image_grid(np.asarray(faces[picks]))


def read_summary(path: Path) -> dict:
    try:
        summary = json.loads(path.read_text())
    except OSError as error:
        raise DataError(f"summary {path}: cannot read ({error.strerror})") from None
    except ValueError as error:
        raise DataError(f"summary {path}: not JSON ({error})") from None
    missing = {"images", "shards", "aligned", "aligned_fraction", "several_faces", "status", "method"} - set(summary)
    if missing:
        raise DataError(f"summary {path}: missing keys {sorted(missing)}")
    return summary


def report_faces(folder: Path, settings: FacesSettings,
                 tracking_options: tracking.TrackingOptions = tracking.TrackingOptions()) -> None:
    """``folder``/preview.png: ``settings.preview`` of the faces that gather-faces wrote to ``folder``; an MLflow
    run "faces" (as ``tracking_options`` says) with their summary's counts and the preview."""
    summary = read_summary(folder / "summary.json")
    faces = load_faces(folder / "faces.npy")
    if len(faces) != summary["aligned"]:
        raise DataError(f"faces {folder / 'faces.npy'}: {len(faces)} faces, but {folder / 'summary.json'} "
                        f"counts {summary['aligned']} aligned")
    params = {"shards": summary["shards"], "preview": settings.preview}
    with tracking.tracked_run(tracking_options, "faces", params=params) as tracker:
        grid = preview_grid(faces, settings.preview)
        with atomic_path(folder / "preview.png") as tmp:
            Image.fromarray(grid).save(tmp)
        tracker.log_metrics({
            "images": summary["images"], "aligned": summary["aligned"],
            "aligned_fraction": summary["aligned_fraction"], "several_faces": summary["several_faces"],
            **{f"status.{k}": v for k, v in summary["status"].items()},
            **{f"method.{k}": v for k, v in summary["method"].items()},
        })
        tracker.log_dict(summary, "summary.json")
        tracker.log_image(grid, "preview.png")
