"""``mlnb prepare-mnist``: check the MNIST IDX files and pack them into one ``.npz``
(:func:`mlnb.data.mnist.prepare`)."""

from __future__ import annotations

from pathlib import Path

from mlnb.data import mnist
from mlnb.io import check_outputs

IDX_FILES = ("train-images", "train-labels", "test-images", "test-labels")


def configure_parser(parser) -> None:
    for name in IDX_FILES:
        parser.add_argument(f"--{name}", type=Path, required=True, help=f"IDX file ({name})")
    parser.add_argument("--out", type=Path, required=True, help="output .npz")


def run(args) -> int:
    check_outputs({f"--{name}": getattr(args, name.replace("-", "_")) for name in IDX_FILES}, {"--out": args.out})
    counts = mnist.prepare(args.train_images, args.train_labels, args.test_images, args.test_labels, args.out)
    print(f"MNIST: {counts['train']} train and {counts['test']} test digits -> {args.out}")
    return 0
