from __future__ import annotations

import json
from pathlib import Path

import mlflow

from mlnb import cli
from mlnb.cnn.ladder import report_ladder
from mlnb.tracking import TrackingOptions

SETTINGS = {"optimizer": "adam", "steps": 20000, "batch_size": 100, "schedule": "constant", "batch_norm": True,
            "dropout": 0.4}


def write_result(folder, variant, accuracy, **settings):
    path = folder / variant / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"variant": variant, "settings": {**SETTINGS, **settings}, "test_accuracy": accuracy,
                                "epochs": 33.33, "train_images": 60000, "test_images": 10000, "device": "cpu"}))
    return str(path)


def test_the_ladder_table_stands_beside_the_blogs_numbers(tmp_path):
    results = [write_result(tmp_path, "sgd-1000", 0.601, optimizer="sgd", steps=1000, batch_norm=False, dropout=0),
               write_result(tmp_path, "fast", 0.9931, schedule="one-cycle", batch_size=512)]
    out = tmp_path / "ladder.md"
    assert cli.main(["report-ladder", *results, "--blog", '{"sgd-1000": 0.6493}', "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert "| `sgd-1000` | sgd | 1,000 | 100 | 33.33 | constant | no | 0 | 60.10 % | 64.93 % | -4.83 pt |" in lines
    assert "| `fast` | adam | 20,000 | 512 | 33.33 | one-cycle | yes | 0.4 | 99.31 % | — | — |" in lines
    assert "60,000 training and 10,000 test digits; device cpu" in out.read_text()



def test_report_ladder_from_python_writes_what_the_command_writes(tmp_path):
    results = [write_result(tmp_path, "sgd-1000", 0.601, optimizer="sgd"), write_result(tmp_path, "fast", 0.9931)]
    blog = {"sgd-1000": 0.6493}
    read = report_ladder([Path(path) for path in results], blog, tmp_path / "python.md", [], TrackingOptions())
    assert [result["variant"] for result in read] == ["sgd-1000", "fast"]
    assert cli.main(["report-ladder", *results, "--blog", json.dumps(blog), "--out", str(tmp_path / "cli.md")]) == 0
    assert (tmp_path / "python.md").read_bytes() == (tmp_path / "cli.md").read_bytes()

def test_the_report_is_logged_and_timings_go_to_mlflow_only(tmp_path, mlflow_uri):
    result = write_result(tmp_path, "adam-1000", 0.98)
    timing = tmp_path / "timing.json"
    timing.write_text(json.dumps({"variant": "adam-1000", "train_seconds": 12.5}))
    out = tmp_path / "ladder.md"
    argv = ["report-ladder", result, "--timing", str(timing), "--out", str(out),
            "--tracking-uri", mlflow_uri, "--experiment", "tests"]
    assert cli.main(argv) == 0
    assert "12.5" not in out.read_text()
    client = mlflow.MlflowClient(mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"ladder.md", "timing.json"}
    assert run.data.metrics["test_accuracy.adam-1000"] == 0.98


def test_a_foreign_result_is_named(tmp_path, caplog):
    path = tmp_path / "result.json"
    path.write_text('{"variant": "x"}')
    assert cli.main(["report-ladder", str(path), "--out", str(tmp_path / "ladder.md")]) == 2
    assert f"{path}: not a train-cnn result (missing epochs, settings" in caplog.text
    assert not (tmp_path / "ladder.md").exists()
