"""The `mlnb` command: one sub-command per pipeline stage.

Each sub-command lives in its own module, which exposes ``configure_parser(parser)``
and ``run(args) -> int``. Modules are imported only when their command runs, so
``mlnb --help`` stays fast and a stage's heavy dependencies load only when needed.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys

from mlnb import stopping
from mlnb.errors import MlnbError
from mlnb.io import WRITE_FAULTS

#: sub-command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo-data": ("mlnb.demo.build_cli", "build small offline replicas of MNIST, CelebA and the MRI set"),
    "fetch": ("mlnb.data.fetch_cli", "download (or copy) one file, verify its checksum, write it atomically"),
    "prepare-mnist": ("mlnb.data.prepare_mnist_cli", "check the MNIST IDX files and pack them into one .npz"),
    "prepare-celeba": ("mlnb.data.prepare_celeba_cli", "check the CelebA zip and annotation files and write an index"),
    "prepare-heart": ("mlnb.data.prepare_heart_cli",
                      "safely extract the MSD heart archive and index image/label pairs"),
    "log-data": ("mlnb.data.log_cli", "log dataset statistics and previews to MLflow"),
    "init-tracking": ("mlnb.init_tracking_cli", "create the MLflow store and experiment before jobs fan out"),
    "align": ("mlnb.faces.align_cli", "detect, landmark and align faces (dlib + OpenFace geometry)"),
    "gather-faces": ("mlnb.faces.gather_cli", "gather aligned shards into one array, manifest and summary"),
    "report-faces": ("mlnb.faces.report_cli", "the gathered faces' preview grid, logged to MLflow with their summary"),
    "augment": ("mlnb.augment.augment_cli", "augment an image (2D/3D) and its segmentation"),
    "gather-augment": ("mlnb.augment.gather_cli", "gather augmented cases into a manifest and log them"),
    "fid-stats": ("mlnb.dcgan.stats_cli", "Inception statistics of a dataset's images, cached for FID"),
    "train-cnn": ("mlnb.cnn.train_cli", "train one variant of the blog's MNIST CNN ladder (resumable, tracked)"),
    "report-ladder": ("mlnb.cnn.report_cli", "the CNN ladder as a Markdown table beside the blog's accuracies"),
    "train-gates": ("mlnb.scratch.train_gates_cli",
                    "train the from-scratch network on a logic gate over several seeds"),
    "report-gates": ("mlnb.scratch.report_gates_cli", "one Markdown report of the gates over seeds, beside the blog"),
    "train-mlp": ("mlnb.scratch.train_mlp_cli", "train the from-scratch network on MNIST with mini-batches"),
    "train-dcgan": ("mlnb.dcgan.train_cli", "train the blog's DCGAN on packed images (resumable, tracked, FID)"),
    "prepare-segment": ("mlnb.segment.prepare_cli", "preprocess labelled MRI volumes into one pack (and the folds)"),
    "train-segment": ("mlnb.segment.train_cli", "train the 3-D U-Net of one (arm, fold), predict its held-out cases"),
    "report-segment": ("mlnb.segment.report_cli", "every arm's held-out Dice and HD95 against no augmentation"),
    "ui": ("mlnb.ui_cli", "serve the pipeline's MLflow store in MLflow's web UI (127.0.0.1 by default)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlnb", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # SIGTERM (Snakemake or Slurm stopping a job) becomes SystemExit, so cleanups run;
    # long loops stop between steps instead (mlnb.stopping.cooperative_stop).
    stopping.exit_on_sigterm()
    parser = build_parser()
    # Parse only up to the command name, then let the command's module build its own parser.
    top, rest = parser.parse_known_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if top.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    module_name, help_text = COMMANDS[top.command]
    try:  # a stop while the command's libraries load is a stop too
        with stopping.stops_outlive_finalizers():
            module = importlib.import_module(module_name)
            command_parser = argparse.ArgumentParser(prog=f"mlnb {top.command}", description=help_text)
            module.configure_parser(command_parser)
            args = command_parser.parse_args(rest)
            return int(module.run(args) or 0)
    except MlnbError as error:
        logging.getLogger("mlnb").error("%s", " ".join(str(error).split()))  # one line, whatever was quoted
        return 2
    except OSError as error:
        if error.errno not in WRITE_FAULTS | {errno.EACCES, errno.EPERM}:
            raise
        logging.getLogger("mlnb").error("mlnb %s: %s", top.command, error)  # the file system, not the command
        return 2
    except (stopping.Stopped, KeyboardInterrupt) as error:
        signal_name = stopping.stop_signal_of(error)
        logging.getLogger("mlnb").error("mlnb %s: stopped by %s", top.command, signal_name)
        return stopping.exit_code(signal_name)


if __name__ == "__main__":
    sys.exit(main())
