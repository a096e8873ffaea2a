"""``mlnb augment``: augmented copies of an image (2-D, RGB or 3-D) and its segmentation
(:func:`mlnb.augment.copies.augment_image`, :func:`mlnb.augment.record.replay`).

    mlnb augment IMAGE [--seg SEG] --out DIR --seed S [--settings JSON|FILE] [--copies N --dims H W [D] ...]
    mlnb augment --replay DIR/<name>_aug<k>.json [--out DIR] [--force]

writes ``DIR/<name>_aug<k>.<ext>``, ``<name>_aug<k>_seg.<ext>``, ``<name>_aug<k>.json`` (the record to
replay it from) and ``<name>_aug<k>_preview.png`` (as ``previews`` says) for every copy k. The
settings are config.yaml's ``augment`` section (``--settings``), or one flag per key (defaults:
the config schema). Copies k >= N that an earlier run of this command made are removed.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
from pathlib import Path
from typing import Any

from mlnb import tracking
from mlnb.augment.names import split_name
from mlnb.augment.settings import AugmentSettings
from mlnb.errors import ConfigError
from mlnb.io import Folder, check_outputs
from mlnb.settings import (
    add_settings_arguments,
    config_flag_type,
    schema_flag_values,
    settings_file,
    settings_from_args,
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", nargs="?", type=Path, help="image: NIfTI (.nii, .nii.gz), PNG or JPEG")
    parser.add_argument("--seg", type=Path, help="its segmentation (NIfTI or PNG), moved with the image")
    parser.add_argument("--out", type=Path, help="output folder (with --replay: default beside the record)")
    parser.add_argument("--seed", type=config_flag_type("seed"), default=0,
                        help="master seed; copy k of item I draws from (seed, I, k)")
    parser.add_argument("--item", help="item id in the seed (default: the image's file name without extension)")
    parser.add_argument("--replay", type=Path, metavar="JSON", help="recreate the copy a record describes")
    parser.add_argument("--force", action="store_true", help="with --replay: overwrite files that exist")
    add_settings_arguments(parser, AugmentSettings)
    tracking.add_tracking_arguments(parser)


def flags_given(args: argparse.Namespace) -> dict[str, Any]:
    """The command's flags as given (the settings as their text, each flag that overrides one by its key):
    the MLflow run's params."""
    names = [field.name for field in dataclasses.fields(AugmentSettings)]
    overrides = schema_flag_values(args, names, f"{AugmentSettings.section}.")
    return {"image": args.image, "seg": args.seg, "out": args.out, "seed": args.seed, "item": args.item,
            "replay": args.replay, "force": args.force, "settings": args.settings,
            **{f"{AugmentSettings.section}.{name}": value for name, value in overrides.items()}}


def run(args) -> int:
    import cv2

    from mlnb.augment.copies import augment_image
    from mlnb.augment.record import replay

    if args.replay is None and (args.image is None or args.out is None):
        raise ConfigError("mlnb augment: give IMAGE and --out DIR (or --replay JSON)")
    settings = settings_from_args(AugmentSettings, args)
    if args.replay is not None:
        cv2.setNumThreads(settings.threads)
        record = replay(args.replay, args.out, force=args.force)
        print(f"replayed {args.replay}: {record['outputs']['image']}")
        return 0
    copies = f"{glob.escape(split_name(args.image)[0])}_aug*"  # <name>_aug<k>.<ext>, its record, preview ...
    check_outputs({"IMAGE": args.image, "--seg": args.seg, "--settings": settings_file(args.settings)},
                  {"--out": Folder(args.out, (copies,))})
    records = augment_image(args.image, args.seg, args.out, settings, args.seed, args.item,
                            tracking.TrackingOptions.from_args(args), flags_given(args))
    print(f"{args.image}: {len(records)} augmented copies -> {args.out}")
    return 0
