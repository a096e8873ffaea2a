"""The options every training command shares, as one typed value, and the flags that set them.

``mlnb train-cnn``, ``train-mlp`` and ``train-dcgan`` take the same flags, with the same defaults, for
their data, seed, outputs, timing file, rule tag and checkpoint folder; the stage's settings and the
``train`` section come on top (:mod:`mlnb.settings`). A stage's training function takes a
:class:`RunOptions`, so it runs from Python as it does from the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from mlnb import tracking
from mlnb.settings import config_flag_type
from mlnb.training.checkpoint import checkpoint_folder


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """Where a training run reads and writes, and how it is tracked; none of it changes the weights but
    ``data`` and ``seed``."""

    data: Path
    out: Path
    seed: int = 0
    timing: Path | None = None
    rule: str = "by-hand"
    checkpoint_dir: Path | None = None
    tracking: tracking.TrackingOptions = tracking.TrackingOptions()

    def checkpoints(self, stage: str, run: str) -> Path:
        """The checkpoint folder: ``checkpoint_dir``, or ``results/checkpoints/<stage>/<run>``."""
        return self.checkpoint_dir or checkpoint_folder(stage, run)


def add_run_arguments(parser: argparse.ArgumentParser, data_help: str, out_help: str) -> None:
    """The flags of :class:`RunOptions` (and MLflow's), with the same defaults in every training command."""
    parser.add_argument("--data", type=Path, required=True, help=data_help)
    parser.add_argument("--out", type=Path, required=True, help=out_help)
    parser.add_argument("--seed", type=config_flag_type("seed"), default=0,
                        help="master seed (weights, batches, dropout, noise)")
    parser.add_argument("--timing", type=Path, help="JSON file for the wall times (kept out of --out)")
    parser.add_argument("--rule", default="by-hand", help="the Snakemake rule running it (an MLflow tag)")
    parser.add_argument("--checkpoint-dir", type=Path,
                        help="checkpoint folder (default: results/checkpoints/<stage>/<run>)")
    tracking.add_tracking_arguments(parser, system_metrics=True)


def run_options_from_args(args: argparse.Namespace) -> RunOptions:
    return RunOptions(data=args.data, out=args.out, seed=args.seed, timing=args.timing, rule=args.rule,
                      checkpoint_dir=args.checkpoint_dir, tracking=tracking.TrackingOptions.from_args(args))
