"""``mlnb augment``: augmented copies of an image (2-D, RGB or 3-D) and its segmentation.

    mlnb augment IMAGE [--seg SEG] --out DIR --copies N --seed S [--dims H W [D]] [--mode fused|sequential]
    mlnb augment --replay DIR/<name>_aug<k>.json [--out DIR]

writes ``DIR/<name>_aug<k>.<ext>``, ``<name>_aug<k>_seg.<ext>``, ``<name>_aug<k>.json`` (the record to
replay it from) and ``<name>_aug<k>_preview.png`` for every copy k.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mlnb import tracking
from mlnb.augment import MODES
from mlnb.augment.policy import BLOG_TRANSFORMS, RandomPolicy
from mlnb.errors import ConfigError

ALL_TRANSFORMS = (*BLOG_TRANSFORMS, "slice_shift")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", nargs="?", type=Path, help="image: NIfTI (.nii, .nii.gz), PNG or JPEG")
    parser.add_argument("--seg", type=Path, help="its segmentation (NIfTI or PNG), moved with the image")
    parser.add_argument("--out", type=Path, help="output folder (with --replay: default beside the record)")
    parser.add_argument("--copies", type=int, default=1, help="augmented copies to make")
    parser.add_argument("--seed", type=int, default=0, help="master seed; copy k of item I draws from (seed, I, k)")
    parser.add_argument("--item", help="item id in the seed (default: the image's file name without extension)")
    parser.add_argument("--dims", type=int, nargs="+", metavar="N",
                        help="output size H W (and slices D for volumes); default: keep the square crop's size")
    parser.add_argument("--mode", choices=sorted(MODES), default="fused",
                        help="fused: one resampling; sequential: the blog's chain (reference)")
    parser.add_argument("--order", type=int, choices=range(6), default=3, help="spline order for images")
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads")
    parser.add_argument("--replay", type=Path, metavar="JSON", help="recreate the copy a record describes")
    policy = parser.add_argument_group("random policy (defaults: the blog's)")
    policy.add_argument("--transforms", nargs="+", choices=ALL_TRANSFORMS, default=list(BLOG_TRANSFORMS))
    policy.add_argument("--min-transforms", type=int, default=1)
    policy.add_argument("--max-transforms", type=int, default=5)
    policy.add_argument("--rotation-degrees", type=float, default=10.0, help="rotations in ±DEG")
    policy.add_argument("--scale-range", type=float, nargs=2, default=(0.9, 1.1), metavar=("LOW", "HIGH"))
    policy.add_argument("--intensity-range", type=float, nargs=2, default=(0.8, 1.2), metavar=("LOW", "HIGH"))
    policy.add_argument("--translation-pixels", type=int, default=5, help="shifts in ±PIXELS")
    policy.add_argument("--crop-margin", type=int, default=5, help="pixels kept around the segmentation")
    policy.add_argument("--slice-shift-pixels", type=int, default=3, help="slice shifts in ±PIXELS")
    policy.add_argument("--slice-shift-fraction", type=float, default=0.5, help="fraction of slices shifted")
    tracking.add_tracking_arguments(parser)


def policy_from_args(args) -> RandomPolicy:
    return RandomPolicy(
        dims=tuple(args.dims) if args.dims else None,
        transforms=tuple(args.transforms),
        min_transforms=args.min_transforms,
        max_transforms=args.max_transforms,
        rotation_degrees=args.rotation_degrees,
        scale_range=tuple(args.scale_range),
        intensity_range=tuple(args.intensity_range),
        translation_pixels=args.translation_pixels,
        crop_margin=args.crop_margin,
        slice_shift_pixels=args.slice_shift_pixels,
        slice_shift_fraction=args.slice_shift_fraction,
    )


def _check_args(args) -> None:
    if args.replay is None and (args.image is None or args.out is None):
        raise ConfigError("mlnb augment: give IMAGE and --out DIR (or --replay JSON)")
    if args.copies < 1 or args.seed < 0 or args.threads < 1:
        raise ConfigError(f"mlnb augment: --copies ({args.copies}) and --threads ({args.threads}) must be "
                          f">= 1 and --seed ({args.seed}) >= 0")


def run(args) -> int:
    import cv2

    from mlnb.augment.io import read_pair
    from mlnb.augment.record import Engine, augment_copies, replay

    _check_args(args)
    cv2.setNumThreads(args.threads)
    if args.replay is not None:
        record = replay(args.replay, args.out)
        print(f"replayed {args.replay}: {record['outputs']['image']}")
        return 0

    policy = policy_from_args(args)
    loaded = read_pair(args.image, args.seg)
    inputs = {"image": args.image, **({"seg": args.seg} if args.seg else {})}
    with tracking.tracked_run(args, "augment", inputs=inputs) as tracker:
        records = augment_copies(loaded, policy, args.seed, args.copies, args.out,
                                 Engine(args.mode, args.order), args.item)
        for record in records:
            tracker.log_artifact(args.out / record["outputs"]["preview"], "previews")
        tracker.log_metrics({"copies": len(records)})
    print(f"{args.image}: {len(records)} augmented copies -> {args.out}")
    return 0
