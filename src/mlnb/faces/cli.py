"""``mlnb align``: detect, landmark and align faces into DIR/faces.npy + DIR/manifest.csv.

INPUT is one or more zips, directories or image files. With ``--index`` (a CelebA
index.csv) the single INPUT zip or directory is read in the index's order and
CelebA's five landmarks become the fallback for images where dlib finds no face.
``--shard K --shards N`` aligns only the K-th (0-based) of N contiguous shards.
Settings: config.yaml's ``faces`` section (``--settings``) or one flag per key
(defaults: the config schema); ``--threads`` (or ``--workers``) worker processes.
"""

from __future__ import annotations

import argparse
import logging
import time

from mlnb.errors import ConfigError
from mlnb.faces import sources
from mlnb.faces.pipeline import aligned_results, write_results
from mlnb.faces.settings import FacesSettings
from mlnb.settings import add_settings_arguments, settings_from_args

log = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="zip archive(s), directories or image files")
    parser.add_argument("--out", required=True, help="output directory for faces.npy and manifest.csv")
    parser.add_argument("--index", default=None,
                        help="CelebA index.csv (member + five landmarks) describing the single INPUT")
    parser.add_argument("--shard", type=int, default=None,
                        help="align only this one (0-based) of the --shards shards; default: every input")
    add_settings_arguments(parser, FacesSettings)
    parser.add_argument("--workers", type=int, dest="faces.threads", default=argparse.SUPPRESS,
                        help="the same as --threads: worker processes")


def select_items(args: argparse.Namespace, shards: int) -> list[sources.Item]:
    number, shards = (0, 1) if args.shard is None else (args.shard, shards)
    if args.index is not None:
        if len(args.inputs) != 1:
            raise ConfigError(f"--index describes one zip or directory, got {len(args.inputs)} inputs")
        return sources.items_from_index(args.inputs[0], args.index, number, shards)
    return sources.shard(sources.items_from_inputs(args.inputs), number, shards)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(FacesSettings, args)
    items = select_items(args, settings.shards)
    shard = "all inputs" if args.shard is None else f"shard {args.shard} of {settings.shards}"
    log.info("aligning %d images (%s) with %d worker(s)", len(items), shard, settings.threads)
    start = time.perf_counter()
    with aligned_results(items, settings, settings.threads) as results:
        counts = write_results(results, args.out, settings.size, total=len(items))
    elapsed = time.perf_counter() - start
    log.info("%s in %.1f s (%.1f images/s); wrote %s/faces.npy and manifest.csv",
             ", ".join(f"{n} {status}" for status, n in counts.items()), elapsed,
             len(items) / max(elapsed, 1e-9), args.out)
    return 0
