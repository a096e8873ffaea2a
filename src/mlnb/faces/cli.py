"""``mlnb align``: detect, landmark and align faces into DIR/faces.npy + DIR/manifest.csv.

INPUT is one or more zips, directories or image files. With ``--index`` (a CelebA
index.csv) the single INPUT zip or directory is read in the index's order and
CelebA's five landmarks become the fallback for images where dlib finds no face.
``--shard K --shards N`` aligns only the K-th (0-based) of N contiguous shards.
"""

from __future__ import annotations

import argparse
import logging
import time

from mlnb.errors import ConfigError
from mlnb.faces import align, sources
from mlnb.faces.pipeline import AlignOptions, aligned_results, write_results

log = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="zip archive(s), directories or image files")
    parser.add_argument("--out", required=True, help="output directory for faces.npy and manifest.csv")
    parser.add_argument("--size", type=int, default=64, help="side of the aligned square faces (px)")
    parser.add_argument("--landmarks", choices=sorted(align.LANDMARK_SETS), default="inner-eyes-bottom-lip",
                        help="landmarks mapped onto OpenFace's mean face")
    parser.add_argument("--upsample", type=int, default=1,
                        help="highest HOG upsampling; the search runs at 5/6 scale, then at full scale with "
                             "upsampling 0, 1, ... until a face is found")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--min-side", type=int, default=32, help="images with a shorter side are refused (px)")
    parser.add_argument("--index", default=None,
                        help="CelebA index.csv (member + five landmarks) describing the single INPUT")
    parser.add_argument("--shard", type=int, default=0, help="which shard to align (0-based)")
    parser.add_argument("--shards", type=int, default=1, help="number of shards the inputs are split into")


def select_items(args: argparse.Namespace) -> list[sources.Item]:
    if args.index is not None:
        if len(args.inputs) != 1:
            raise ConfigError(f"--index describes one zip or directory, got {len(args.inputs)} inputs")
        items = sources.items_from_index(args.inputs[0], args.index)
    else:
        items = sources.items_from_inputs(args.inputs)
    return sources.shard(items, args.shard, args.shards)


def run(args: argparse.Namespace) -> int:
    options = AlignOptions(size=args.size, landmarks=args.landmarks, upsample=args.upsample,
                           min_side=args.min_side)
    items = select_items(args)
    log.info("aligning %d images (shard %d of %d) with %d worker(s)", len(items), args.shard, args.shards,
             args.workers)
    start = time.perf_counter()
    with aligned_results(items, options, args.workers) as results:
        counts = write_results(results, args.out, args.size, total=len(items))
    elapsed = time.perf_counter() - start
    log.info("%s in %.1f s (%.1f images/s); wrote %s/faces.npy and manifest.csv",
             ", ".join(f"{n} {status}" for status, n in counts.items()), elapsed,
             len(items) / max(elapsed, 1e-9), args.out)
    return 0
