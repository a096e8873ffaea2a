"""``mlnb align``: detect, landmark and align faces into DIR/faces.npy + DIR/manifest.csv
(:func:`mlnb.faces.pipeline.align_faces`).

INPUT is one or more zips, directories or image files. With ``--index`` (a CelebA
index.csv) the single INPUT zip or directory is read in the index's order and
CelebA's five landmarks become the fallback for images where dlib finds no face.
``--shard K --shards N`` aligns only the K-th (0-based) of N contiguous shards.
Settings: config.yaml's ``faces`` section (``--settings``) or one flag per key
(defaults: the config schema); ``--threads`` (or ``--workers``) worker processes.
"""

from __future__ import annotations

import argparse

from mlnb.faces.pipeline import align_faces
from mlnb.faces.settings import FacesSettings
from mlnb.io import Folder, check_outputs
from mlnb.settings import add_settings_arguments, settings_file, settings_from_args


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


def run(args: argparse.Namespace) -> int:
    check_outputs({"INPUT": args.inputs, "--index": args.index, "--settings": settings_file(args.settings)},
                  {"--out": Folder(args.out, ("faces.npy", "manifest.csv"))})
    # mlnb's own process: the aligner may move its heap to huge pages
    align_faces(args.inputs, args.out, settings_from_args(FacesSettings, args), args.index, args.shard,
                huge_pages=True)
    return 0
