"""``mlnb prepare-segment``: preprocess labelled volumes into one pack (:mod:`mlnb.segment.preprocess`).

    mlnb prepare-segment --index results/data/heart/index.csv --out results/segment/data/cases \\
        --folds 5 --seed 20170601
    mlnb prepare-segment --manifest results/augmented/heart/manifest.csv --like results/segment/data/cases \\
        --out results/segment/data/copies
"""

from __future__ import annotations

from pathlib import Path

from mlnb.segment import folds, preprocess


def configure_parser(parser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--index", type=Path, help="the heart index (mlnb prepare-heart): the labelled cases")
    source.add_argument("--manifest", type=Path,
                        help="the augment stage's manifest (mlnb gather-augment): its copies, for the offline arm")
    parser.add_argument("--like", type=Path,
                        help="with --manifest: the originals' pack, whose spacing the copies are resampled to")
    parser.add_argument("--out", type=Path, required=True, help="pack folder (images.npy, labels.npy, index.json)")
    parser.add_argument("--folds", type=int, help="with --index: also write OUT/folds.json, this many folds")
    parser.add_argument("--seed", type=int, default=0, help="master seed (fixes the folds)")


def run(args) -> int:
    from mlnb.errors import ConfigError
    from mlnb.io import Folder, check_outputs

    check_outputs({"--index": args.index, "--manifest": args.manifest, "--like": args.like},
                  {"--out": Folder(args.out, (preprocess.IMAGES, preprocess.LABELS, preprocess.INDEX, "folds.json"))})

    if (args.manifest is None) != (args.like is None) or (args.manifest is not None and args.folds is not None):
        raise ConfigError("prepare-segment: --manifest needs --like (the originals' pack); --index takes --folds "
                          "and no --like")
    if args.manifest is not None:
        target = preprocess.Pack.load(args.like).index["spacing"]
        index = preprocess.write_pack(preprocess.copy_sources(args.manifest), args.out, target)
    else:
        sources = preprocess.heart_sources(args.index)
        cases = [source.case for source in sources]
        if args.folds is not None:
            folds.assign_folds(cases, args.folds, args.seed)  # refused before the work, not after
        index = preprocess.write_pack(sources, args.out)
        if args.folds is not None:
            folds.write_folds(args.out / "folds.json", cases, args.folds, args.seed)
    spacing = "x".join(f"{value:.3g}" for value in index["spacing"])
    print(f"segment: {len(index['cases'])} cases at {spacing} mm, labels {index['labels']} -> {args.out}")
    return 0
