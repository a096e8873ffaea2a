"""The logger plugin passes the interface package's own tests for every logger plugin."""

from __future__ import annotations

import pytest
from snakemake_interface_logger_plugins.tests import TestLogHandlerBase

from snakemake_logger_plugin_mlflow import LogHandler, LogHandlerSettings


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
