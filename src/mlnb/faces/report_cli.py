"""``mlnb report-faces``: the gathered faces' preview grid, logged to MLflow with their summary
(:func:`mlnb.faces.report.report_faces`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlnb import tracking
from mlnb.faces.report import report_faces
from mlnb.faces.settings import FacesSettings
from mlnb.io import Folder, check_outputs
from mlnb.settings import add_settings_arguments, settings_file, settings_from_args


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("faces_dir", type=Path, metavar="DIR",
                        help="what gather-faces wrote: faces.npy and summary.json; the preview goes to DIR/preview.png")
    add_settings_arguments(parser, FacesSettings)  # of which the report uses preview
    tracking.add_tracking_arguments(parser)


def run(args: argparse.Namespace) -> int:
    check_outputs({"DIR": [args.faces_dir / "faces.npy", args.faces_dir / "summary.json"],
                   "--settings": settings_file(args.settings)}, {"DIR": Folder(args.faces_dir, ("preview.png",))})
    report_faces(args.faces_dir, settings_from_args(FacesSettings, args), tracking.TrackingOptions.from_args(args))
    return 0
