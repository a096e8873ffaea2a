"""The logger plugin passes the interface packages' own tests for every logger plugin, and behaves as a guest in
its host's process: it reads nothing from the host's command line and puts back what it changes."""

from __future__ import annotations

import os
import signal
import uuid

import mlflow
import pytest
from snakemake_interface_common.plugin_registry.tests import TestRegistryBase
from snakemake_interface_logger_plugins.registry import LoggerPluginRegistry
from snakemake_interface_logger_plugins.tests import MockOutputSettings, TestLogHandlerBase

import tests.snakemake_logger_plugin_mlflow.snakemake_records as records
from mlnb.job_runs import INVOCATION_ENV, TAG_KIND
from snakemake_logger_plugin_mlflow import LogHandler, LogHandlerSettings

T0 = 1_796_223_894.0


class TestMlflowLogHandler(TestLogHandlerBase):
    __test__ = True

    @pytest.fixture(autouse=True)
    def _store(self, mlflow_uri):
        """Each test's handlers log to a fresh store and are closed after it (an open one keeps its
        SIGINT handler and the invocation's environment variable)."""
        self.uri = mlflow_uri
        self.handlers = []
        yield
        for handler in self.handlers:
            handler.close()

    def get_log_handler_cls(self):
        return LogHandler

    def get_log_handler_settings(self):
        return LogHandlerSettings(tracking_uri=self.uri, experiment="tests")

    def _create_handler(self):
        handler = super()._create_handler()
        self.handlers.append(handler)
        return handler


class TestMlflowLoggerRegistry(TestRegistryBase):
    __test__ = True

    def get_registry(self):
        return LoggerPluginRegistry()

    def get_test_plugin_name(self):
        return "mlflow"

    def validate_plugin(self, plugin):
        assert plugin.log_handler is LogHandler
        assert plugin.settings_cls is LogHandlerSettings

    def validate_settings(self, settings, plugin):
        assert settings == LogHandlerSettings(tracking_uri="http://127.0.0.1:5000", experiment="cluster", timeout=7.5)

    def get_example_args(self):
        return ["--logger-mlflow-tracking-uri", "http://127.0.0.1:5000", "--logger-mlflow-experiment", "cluster",
                "--logger-mlflow-timeout", "7.5"]


def invocation_run(uri: str):
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    return next(run for run in runs if run.data.tags.get(TAG_KIND) == "invocation")


@pytest.mark.parametrize("host_argv", [["pytest", "--version"], ["pytest", "-h"], ["embedder", "--its-own-flag"]])
def test_the_host_command_line_is_never_read(mlflow_uri, tmp_path, monkeypatch, capsys, host_argv):
    """Outside a Snakemake run (the interface's tests, an embedding program) the host's sys.argv is its own."""
    monkeypatch.setattr("sys.argv", host_argv)
    handler = LogHandler(MockOutputSettings(), LogHandlerSettings(tracking_uri=mlflow_uri, experiment="tests"))
    started = records.workflow_started(T0, uuid.uuid4(), str(tmp_path))
    del started.cmd  # what a record made outside Snakemake lacks
    for entry in (started, records.run_info(T0 + 1, {"one": 1, "total": 1}), records.progress(T0 + 2, 1, 1)):
        handler.handle(entry)
    handler.close()
    assert capsys.readouterr().out == ""
    tags = invocation_run(mlflow_uri).data.tags
    assert tags["snakemake.command"] == "unknown" and "snakemake.targets" not in tags


def test_the_facts_come_from_snakemakes_record(mlflow_uri, tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["pytest", "-x"])
    handler = LogHandler(MockOutputSettings(), LogHandlerSettings(tracking_uri=mlflow_uri, experiment="tests"))
    started = records.workflow_started(T0, uuid.uuid4(), str(tmp_path))
    started.cmd = "/venv/bin/snakemake --cores 3 results/a.txt"
    for entry in (started, records.run_info(T0 + 1, {"one": 1, "total": 1}), records.progress(T0 + 2, 1, 1)):
        handler.handle(entry)
    handler.close()
    tags = invocation_run(mlflow_uri).data.tags
    assert tags["snakemake.command"] == started.cmd
    assert (tags["snakemake.targets"], tags["snakemake.cores"]) == ("results/a.txt", "3")


def test_close_restores_the_environment_and_the_signal_handler(mlflow_uri, monkeypatch):
    monkeypatch.setenv(INVOCATION_ENV, "the-outer-invocation")
    earlier_handler = signal.getsignal(signal.SIGINT)
    before = dict(os.environ)
    handler = LogHandler(MockOutputSettings(), LogHandlerSettings(tracking_uri=mlflow_uri, experiment="tests"))
    assert os.environ[INVOCATION_ENV] == handler.invocation_id  # the jobs of this invocation see its id
    handler.close()
    assert dict(os.environ) == before
    assert signal.getsignal(signal.SIGINT) is earlier_handler
