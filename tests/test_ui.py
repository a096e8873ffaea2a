"""``mlnb ui``: which store it serves (the config the pipeline ran with), its errors, and a real server
that answers on 127.0.0.1 and leaves nothing running once stopped."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mlnb import cli
from mlnb.errors import ConfigError
from mlnb.settings import workflow_section
from mlnb.ui import serve_store

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def project(tmp_path, monkeypatch):
    """A project directory with the real config.yaml and no results yet, as the working directory."""
    shutil.copy2(REPO / "config.yaml", tmp_path / "config.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def ui(argv: list[str], caplog) -> tuple[int, str]:
    with caplog.at_level(logging.INFO):
        try:
            code = cli.main(["ui", *argv])
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code
    return code, caplog.text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_section_is_config_yaml_with_each_configfile_merged_over_it(project):
    (project / "a.yaml").write_text("mlflow:\n  experiment: first\n")
    (project / "b.yaml").write_text("mlflow:\n  tracking_uri: sqlite:///elsewhere.db\n")
    defaults = {"timeout": 60, "system_metrics_interval": 2}
    assert workflow_section("mlflow") == {"tracking_uri": None, "experiment": "mlnb", **defaults}
    assert workflow_section("mlflow", [Path("a.yaml"), Path("b.yaml")]) == {
        "tracking_uri": "sqlite:///elsewhere.db", "experiment": "first", **defaults}


def test_the_demo_config_names_the_demo_experiment(project):
    shutil.copytree(REPO / "workflow" / "config", project / "workflow" / "config")
    assert workflow_section("mlflow", [Path("workflow/config/demo.yaml")])["experiment"] == "mlnb-demo"


def test_a_missing_store_is_named_with_what_to_do(project, caplog):
    code, output = ui([], caplog)
    assert code == 2
    store = project.resolve() / "results" / "mlflow" / "mlflow.db"
    assert f"MLflow store {store} does not exist yet: run the pipeline first" in output
    assert not (project / "results").exists()  # nothing created on the way


@pytest.mark.parametrize(("configfile", "message"), [
    ("mlflow:\n  tracking_uri: http://mlflow.example.org:5000\n",
     r"mlflow\.tracking_uri http://mlflow\.example\.org:5000 is a tracking server already"),
    ("mlflow:\n  experiment: ''\n",
     r"config files config\.yaml, edit\.yaml: mlflow\.experiment: '' should be non-empty"),
    ("mlflow: [1]\n", r"config files config\.yaml, edit\.yaml: mlflow: expected a mapping"),
    ("- not a mapping\n", r"config file edit\.yaml: expected a mapping of config sections"),
    ("mlflow: {\n", r"config file edit\.yaml: not valid YAML"),
], ids=["server-uri", "empty-experiment", "section-not-a-mapping", "file-not-a-mapping", "not-yaml"])
def test_a_bad_config_is_one_clear_error(project, caplog, configfile, message):
    (project / "edit.yaml").write_text(configfile)
    code, output = ui(["--configfile", "edit.yaml"], caplog)
    assert code == 2
    assert re.search(message, output), output


def test_serve_store_checks_its_values_and_the_store_before_it_serves(project):
    with pytest.raises(ConfigError, match="--port 70000: must be between 1 and 65535"):
        serve_store(port=70000)
    with pytest.raises(ConfigError, match="--workers 0: must be at least 1"):
        serve_store(workers=0)
    with pytest.raises(ConfigError, match=r"mlflow\.db does not exist yet: run the pipeline first"):
        serve_store([], port=free_port())
    assert not (project / "results").exists()


def test_a_missing_configfile_is_named(project, caplog):
    code, output = ui(["--configfile", "nope.yaml"], caplog)
    assert code == 2 and "config file nope.yaml: cannot read (No such file or directory)" in output


def make_store(project: Path, template: Path, experiment: str = "tests") -> None:
    """The pipeline's default store, holding experiment ``experiment`` (the session's template store)."""
    (project / "results" / "mlflow").mkdir(parents=True)
    shutil.copyfile(template, project / "results" / "mlflow" / "mlflow.db")
    (project / "edit.yaml").write_text(f"mlflow:\n  experiment: {experiment}\n")


def test_a_port_in_use_is_refused_before_anything_starts(project, mlflow_template_db, caplog):
    make_store(project, mlflow_template_db)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = ui(["--configfile", "edit.yaml", "--port", str(port)], caplog)
    assert code == 2
    assert f"--host 127.0.0.1 --port {port}: cannot listen there (Address already in use)" in output


def start_ui(project: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mlnb.cli", "ui", *args], cwd=project, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_until_it_answers(url: str, server: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(  # noqa: B904 -- the server's state, not the refused connection, is the newsf"mlnb ui did not answer at {url} (exit {server.poll()}): "
                                     f"{server.stderr.read()[-3000:] if server.poll() is not None else ''}")
            time.sleep(0.5)


def stop(server: subprocess.Popen) -> int:
    if server.poll() is None:
        os.kill(server.pid, signal.SIGTERM)
    return server.wait(timeout=60)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` now (Linux's /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # a process that ended meanwhile
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


@pytest.mark.slow  # a real MLflow server
def test_it_serves_the_store_on_127_0_0_1_and_stops_with_its_workers(project, mlflow_template_db):
    make_store(project, mlflow_template_db)
    port = free_port()
    server = start_ui(project, "--configfile", "edit.yaml", "--port", str(port))
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_it_answers(f"{base}/health", server)
        running = descendants(server.pid)  # MLflow's command and its web server
        assert len(running) >= 2, running
        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=tests") as got:
            experiment = json.load(got)["experiment"]
        store = project.resolve() / "results" / "mlflow"
        assert experiment["artifact_location"] == (store / "artifacts").as_uri()
        with urllib.request.urlopen(base) as page:
            assert "MLflow" in page.read().decode()
    finally:
        code = stop(server)
    printed = server.stdout.read()
    runs_page = f"{base}/#/experiments/{experiment['experiment_id']}/runs?workflowType=machine_learning"
    assert f"MLflow UI of sqlite:///{store / 'mlflow.db'}: {runs_page}" in printed, printed
    assert code == 128 + signal.SIGTERM
    assert [pid for pid in running if Path(f"/proc/{pid}").exists()] == []
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow  # a real MLflow server
def test_an_unknown_experiment_serves_the_store_and_names_its_experiments(project, mlflow_template_db):
    make_store(project, mlflow_template_db)
    port = free_port()
    server = start_ui(project, "--port", str(port))  # config.yaml's experiment "mlnb": not in this store
    try:
        wait_until_it_answers(f"http://127.0.0.1:{port}/health", server)
    finally:
        stop(server)
    assert f": http://127.0.0.1:{port}/  (Ctrl-C" in server.stdout.read()
    assert "experiment 'mlnb' is not in sqlite:///" in (errors := server.stderr.read())
    assert "(it has 'Default', 'tests'): pass the --configfile the pipeline ran with" in errors
