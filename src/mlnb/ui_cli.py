"""``mlnb ui``: serve the pipeline's MLflow store in MLflow's web UI (:func:`mlnb.ui.serve_store`).

Run it in the project directory, after the pipeline::

    mlnb ui                                          # the real config's experiment
    mlnb ui --configfile workflow/config/demo.yaml   # the offline demo's
"""

from __future__ import annotations

from pathlib import Path

from mlnb.settings import WORKFLOW_CONFIG
from mlnb.ui import serve_store


def configure_parser(parser) -> None:
    parser.add_argument("--configfile", nargs="+", type=Path, default=[], metavar="FILE",
                        help=f"config files the pipeline ran with, deep-merged over {WORKFLOW_CONFIG} in order "
                             "(as snakemake --configfile)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=5000, help="port to listen on (default 5000)")
    parser.add_argument("--workers", type=int, default=1,
                        help="server worker processes (default 1, enough for one person browsing)")


def run(args) -> int:
    return serve_store(args.configfile, args.host, args.port, args.workers)
