"""Browse the pipeline's MLflow store in MLflow's own server (its web UI and REST API): ``mlnb ui``.

The store is the one the pipeline's jobs log to: the config's ``mlflow`` section
(config.yaml with each ``--configfile`` deep-merged over it, as Snakemake builds it),
the SQLite store under results/mlflow when ``mlflow.tracking_uri`` is null. The
server runs in its own process group, which this command stops when it ends
(Ctrl-C, SIGTERM), so no worker outlives it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from mlnb import tracking
from mlnb.errors import ConfigError
from mlnb.settings import workflow_section

log = logging.getLogger(__name__)

#: Seconds the server gets to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 30
#: Browsing needs none of the server's background jobs (GenAI scorers, periodic tasks), which would start
#: six more processes beside the web server; nor does it send MLflow usage reports off the machine.
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}


def serve_store(configfiles: Sequence[Path] = (), host: str = "127.0.0.1", port: int = 5000, workers: int = 1) -> int:
    """Serve the store that the pipeline run with ``configfiles`` logs to (its ``mlflow`` section, over
    config.yaml) on ``host``:``port`` until stopped; print its address first. Return the server's exit code."""
    if not 0 < port < 65536:
        raise ConfigError(f"--port {port}: must be between 1 and 65535")
    if workers < 1:
        raise ConfigError(f"--workers {workers}: must be at least 1")
    settings = workflow_section("mlflow", configfiles)
    uri = tracking.pipeline_tracking_uri(settings)
    command = server_command(uri, host, port, workers)
    require_free_port(host, port)
    url = f"http://{host}:{port}/{experiment_fragment(uri, settings['experiment'])}"
    print(f"MLflow UI of {uri}: {url}  (Ctrl-C stops it)", flush=True)
    return serve(command)


def server_command(uri: str, host: str, port: int, workers: int) -> list[str]:
    """``mlflow server`` on the pipeline's store; a SQLite store must exist and keeps its artifacts beside it."""
    if uri.startswith(("http://", "https://")):
        raise ConfigError(f"mlflow.tracking_uri {uri} is a tracking server already: open it in a browser "
                          "(mlnb ui serves a store that the pipeline writes directly)")
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
               "--host", host, "--port", str(port), "--workers", str(workers)]
    db_path = tracking.sqlite_path(uri)
    if db_path is not None:
        if not db_path.is_file():
            raise ConfigError(f"MLflow store {db_path} does not exist yet: run the pipeline first "
                              "(snakemake --cores N, with the same --configfile), which creates it")
        command += ["--default-artifact-root", tracking.artifacts_beside(db_path)]
    return command


def experiment_fragment(uri: str, experiment: str) -> str:
    """The UI's address of the configured experiment's runs table, in MLflow's "Model training" view (its
    default, "GenAI", opens on an empty traces overview); the start page when the store has no such
    experiment (a warning names the store's experiments)."""
    try:
        # A SQLite store that was moved gets its artifacts re-pointed here, so the UI finds them.
        return f"#/experiments/{tracking.experiment_id(uri, experiment)}/runs?workflowType=machine_learning"
    except ConfigError:
        names = sorted(e.name for e in tracking.mlflow_client(uri).search_experiments())
        log.warning("experiment %r is not in %s (it has %s): pass the --configfile the pipeline ran with",
                    experiment, uri, ", ".join(map(repr, names)) or "none")
        return ""


def require_free_port(host: str, port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigError(f"--host {host} --port {port}: cannot listen there "
                              f"({error.strerror or error}); choose another --port") from None


def serve(command: list[str]) -> int:
    """Run the server until it exits or this process is stopped; then stop its whole process group."""
    server = subprocess.Popen(command, start_new_session=True, env={**os.environ, **SERVER_ENV})
    try:
        return server.wait()
    except KeyboardInterrupt:  # Ctrl-C is how a browsing session ends
        return 0
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
