"""``mlnb fid-stats``: the command line of :func:`mlnb.dcgan.stats.write_real_stats`.

    mlnb fid-stats results/faces/celeba/faces.npy --dataset celeba --out results/dcgan/celeba/real_stats.npz \\
        --settings config.yaml [--train-settings config.yaml] [--fid-real-samples 10000 ...]
"""

from __future__ import annotations

from pathlib import Path

from mlnb.dcgan.settings import DcganSettings
from mlnb.dcgan.stats import write_real_stats
from mlnb.io import check_outputs
from mlnb.settings import add_settings_arguments, config_flag_type, settings_file, settings_from_args
from mlnb.training.settings import add_train_arguments, train_settings_from_args


def configure_parser(parser) -> None:
    parser.add_argument("images", type=Path,
                        help="packed uint8 images: faces.npy (N x S x S x 3) or mnist.npz (x_train)")
    parser.add_argument("--out", type=Path, required=True, help="statistics file to write (.npz)")
    parser.add_argument("--seed", type=config_flag_type("seed"), default=0, help="master seed (chooses the subset)")
    parser.add_argument("--dataset", default="images", help="dataset name (a key of the subset's seed)")
    add_settings_arguments(parser, DcganSettings)
    add_train_arguments(parser)


def run(args) -> int:
    check_outputs({"IMAGES": args.images, "--settings": settings_file(args.settings),
                   "--train-settings": settings_file(args.train_settings)}, {"--out": args.out})
    write_real_stats(args.images, args.out, settings_from_args(DcganSettings, args), train_settings_from_args(args),
                     args.seed, args.dataset)
    return 0
