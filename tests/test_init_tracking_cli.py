from __future__ import annotations

import json
import socket
import subprocess
import sys

import mlflow
import pytest

import mlnb.init_tracking
from mlnb import cli
from mlnb.errors import ConfigError


def init_tracking(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlnb.cli", "init-tracking", *args], capture_output=True,
                          text=True, timeout=120)


def test_init_tracking_creates_the_store_and_records_the_experiment(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    marker = tmp_path / "experiment.json"
    assert cli.main(["init-tracking", "--tracking-uri", uri, "--experiment", "tests", "--out", str(marker)]) == 0
    recorded = json.loads(marker.read_text())
    experiment = mlflow.MlflowClient(uri).get_experiment_by_name("tests")
    assert recorded == {"tracking_uri": uri, "experiment": "tests", "experiment_id": experiment.experiment_id}


def test_init_tracking_from_python_returns_the_experiment_it_records(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    marker = tmp_path / "experiment.json"
    experiment_id = mlnb.init_tracking.init_tracking(uri, "direct", 5, marker)
    assert experiment_id == mlflow.MlflowClient(uri).get_experiment_by_name("direct").experiment_id
    assert json.loads(marker.read_text())["experiment_id"] == experiment_id
    with pytest.raises(ConfigError, match="--timeout 0: must be more than 0 seconds"):
        mlnb.init_tracking.init_tracking(uri, "direct", 0, marker)


@pytest.fixture()
def refusing_port():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def silent_port():
    """A server that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


@pytest.mark.timeout(60)  # MLflow's own retries took 4 min against a refusing server
def test_a_server_that_refuses_is_a_one_line_error(tmp_path, refusing_port):
    uri = f"http://127.0.0.1:{refusing_port}"
    result = init_tracking("--tracking-uri", uri, "--timeout", "2", "--out", str(tmp_path / "experiment.json"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(f"MLflow tracking server {uri}: Connection refused")
    assert not (tmp_path / "experiment.json").exists()


@pytest.mark.timeout(60)  # it was still retrying after 7 min against a silent server
def test_a_server_that_never_answers_is_given_up_after_the_timeout(tmp_path, silent_port):
    uri = f"http://127.0.0.1:{silent_port}"
    result = init_tracking("--tracking-uri", uri, "--timeout", "1.5", "--out", str(tmp_path / "experiment.json"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(
        f"MLflow tracking server {uri} did not answer within 1.5 s (config key mlflow.timeout, --timeout)")
    assert not (tmp_path / "experiment.json").exists()


def test_the_timeout_defaults_to_the_schema_and_must_be_positive(tmp_path, capsys, caplog):
    assert cli.main(["init-tracking", "--timeout", "0", "--out", str(tmp_path / "e.json")]) == 2
    assert "--timeout 0: must be more than 0 seconds" in caplog.text
    with pytest.raises(SystemExit):
        cli.main(["init-tracking", "--help"])
    assert "seconds to wait for a tracking server (default 60)" in " ".join(capsys.readouterr().out.split())
