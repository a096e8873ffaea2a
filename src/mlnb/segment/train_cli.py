"""``mlnb train-segment``: the command line of :func:`mlnb.segment.train.train_fold`.

    mlnb train-segment --data results/segment/data/cases --folds-file results/segment/data/cases/folds.json \\
        --arm onthefly --fold 0 --out results/segment/onthefly/fold0 --settings config.yaml \\
        --augment-settings config.yaml [--train-settings config.yaml] [--copies results/segment/data/copies]
"""

from __future__ import annotations

from pathlib import Path

from mlnb.augment.settings import AugmentSettings
from mlnb.io import Folder, check_outputs
from mlnb.segment.settings import ARMS, SegmentSettings
from mlnb.segment.train import train_fold
from mlnb.settings import add_settings_arguments, read_section, settings_file, settings_from_args
from mlnb.training.options import add_run_arguments, run_options_from_args
from mlnb.training.settings import add_train_arguments, train_settings_from_args


def configure_parser(parser) -> None:
    add_run_arguments(parser, data_help="the originals' pack (mlnb prepare-segment --index)",
                      out_help="output folder (predictions, previews, metrics.json, model.pt)")
    parser.add_argument("--arm", required=True, help=f"augmentation arm: {', '.join(ARMS)}")
    parser.add_argument("--fold", type=int, required=True, help="held-out fold (0-based)")
    parser.add_argument("--folds-file", type=Path, required=True, help="folds.json (mlnb prepare-segment --folds)")
    parser.add_argument("--copies", type=Path, help="the copies' pack (mlnb prepare-segment --manifest): arm offline")
    parser.add_argument("--augment-settings", metavar="JSON|FILE",
                        help="the augment config section (its random policy and order), as JSON or a YAML/JSON "
                             "file with it (or a whole config); default: the schema's")
    add_settings_arguments(parser, SegmentSettings)
    add_train_arguments(parser)


def run(args) -> int:
    options = run_options_from_args(args)
    check_outputs({"--data": options.data, "--folds-file": args.folds_file, "--copies": args.copies,
                   "--settings": settings_file(args.settings),
                   "--augment-settings": settings_file(args.augment_settings),
                   "--train-settings": settings_file(args.train_settings)},
                  {"--out": Folder(options.out, ("metrics.json", "model.pt", "predictions/*", "previews/*")),
                   "--timing": options.timing,
                   "--checkpoint-dir": Folder(options.checkpoints("segment", f"{args.arm}-fold{args.fold}"))})
    augment = AugmentSettings.from_mapping(*read_section("augment", args.augment_settings)) \
        if args.augment_settings else AugmentSettings.from_mapping({})
    metrics = train_fold(args.arm, args.fold, settings_from_args(SegmentSettings, args), augment,
                         train_settings_from_args(args), options, args.folds_file, args.copies)
    if metrics is None:  # not rank 0 of a data-parallel job
        return 0
    print(f"segment-{args.arm}-fold{args.fold}: held-out Dice {metrics['dice']:.4f}, HD95 {metrics['hd95']:.2f} mm "
          f"over {len(metrics['cases'])} cases -> {args.out}")
    return 0
