from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from PIL import Image

from mlnb.cli import main
from mlnb.faces.report import preview_grid, report_faces
from mlnb.faces.settings import FacesSettings
from mlnb.tracking import TrackingOptions

SUMMARY = {"images": 7, "shards": 2, "aligned": 5, "aligned_fraction": 5 / 7, "several_faces": 1,
           "status": {"aligned": 5, "bad-image": 2}, "method": {"dlib": 4, "celeba-landmarks": 1}}


@pytest.fixture()
def gathered(tmp_path):
    """What gather-faces writes: five 64 px faces and their summary."""
    faces = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.ones((1, 64, 64, 3), dtype=np.uint8)
    np.save(tmp_path / "faces.npy", faces)
    (tmp_path / "summary.json").write_text(json.dumps(SUMMARY))
    return tmp_path


def test_preview_grid_spreads_picks_over_the_set():
    faces = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), dtype=np.uint8)
    grid = preview_grid(faces, 4)
    cells = [grid[top, left, 0] for top in (2, 6) for left in (2, 6)]  # 2x2 grid, 2 px gaps
    assert grid.shape == (10, 10, 3) and cells == [0, 3, 6, 9]


def test_report_writes_the_preview(gathered):
    assert main(["report-faces", str(gathered), "--preview", "4"]) == 0
    assert Image.open(gathered / "preview.png").size == (2 * 64 + 3 * 2, 2 * 64 + 3 * 2)  # 2x2, 2 px gaps


def test_report_logs_summary_and_preview_to_mlflow(gathered, mlflow_uri):
    mlflow = pytest.importorskip("mlflow")
    assert main(["report-faces", str(gathered), "--tracking-uri", mlflow_uri, "--experiment", "tests"]) == 0
    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert run.data.metrics["aligned"] == 5 and run.data.metrics["status.bad-image"] == 2
    assert run.data.metrics["method.celeba-landmarks"] == 1
    assert run.data.params["preview"] == "64" and run.data.params["shards"] == "2"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"summary.json", "preview.png"}


def test_report_faces_from_python_writes_and_logs_the_preview(gathered, mlflow_uri):
    mlflow = pytest.importorskip("mlflow")
    report_faces(gathered, FacesSettings.from_mapping({"preview": 4}),
                 TrackingOptions(tracking_uri=mlflow_uri, experiment="tests"))
    assert Image.open(gathered / "preview.png").size == (2 * 64 + 3 * 2, 2 * 64 + 3 * 2)
    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert run.info.run_name == "faces" and run.data.params == {"preview": "4", "shards": "2"}


def test_faces_that_disagree_with_the_summary_are_named(gathered, caplog):
    np.save(gathered / "faces.npy", np.zeros((4, 64, 64, 3), np.uint8))
    with caplog.at_level(logging.ERROR):
        assert main(["report-faces", str(gathered)]) == 2
    assert f"{gathered / 'faces.npy'}: 4 faces, but" in caplog.text and "counts 5 aligned" in caplog.text
    assert not (gathered / "preview.png").exists()


def test_a_summary_without_counts_is_named(gathered, caplog):
    (gathered / "summary.json").write_text(json.dumps({"images": 7}))
    with caplog.at_level(logging.ERROR):
        assert main(["report-faces", str(gathered)]) == 2
    assert "summary.json: missing keys ['aligned'" in caplog.text
