"""``mlnb train-dcgan``: the command line of :func:`mlnb.dcgan.train.train_dcgan`.

    mlnb train-dcgan --data results/faces/celeba/faces.npy --dataset celeba \\
        --real-stats results/dcgan/celeba/real_stats.npz --out results/dcgan/celeba --settings config.yaml \\
        [--train-settings config.yaml] [--epochs 2 ...]
"""

from __future__ import annotations

from pathlib import Path

from mlnb.dcgan.settings import DcganSettings
from mlnb.dcgan.train import train_dcgan
from mlnb.io import Folder, check_outputs
from mlnb.settings import add_settings_arguments, settings_file, settings_from_args
from mlnb.training.options import add_run_arguments, run_options_from_args
from mlnb.training.settings import add_train_arguments, train_settings_from_args


def configure_parser(parser) -> None:
    add_run_arguments(parser, data_help="packed uint8 images: faces.npy (N x S x S x 3) or mnist.npz",
                      out_help="output folder")
    parser.add_argument("--dataset", required=True, help="dataset name (names the run, seeds, checkpoints)")
    parser.add_argument("--real-stats", type=Path, required=True, help="the images' FID statistics (mlnb fid-stats)")
    parser.add_argument("--faces", action="store_true", help="the images are faces: measure dlib's detection rate")
    add_settings_arguments(parser, DcganSettings)
    add_train_arguments(parser)


def run(args) -> int:
    options = run_options_from_args(args)
    check_outputs({"--data": options.data, "--real-stats": args.real_stats, "--settings": settings_file(args.settings),
                   "--train-settings": settings_file(args.train_settings)},
                  {"--out": Folder(options.out, ("summary.json", "generator.pt", "samples.gif", "turing.html",
                                                 "samples/*")),
                   "--timing": options.timing, "--checkpoint-dir": Folder(options.checkpoints("dcgan", args.dataset))})
    summary = train_dcgan(args.dataset, settings_from_args(DcganSettings, args), train_settings_from_args(args),
                          options, args.real_stats, args.faces)
    if summary is None:  # not rank 0 of a data-parallel job
        return 0
    fid = summary["fid"][-1]
    print(f"dcgan-{args.dataset}: FID {fid['fid']:.2f} ({fid['generated']} generated vs {fid['real']} real) "
          f"after {summary['steps']} steps -> {args.out}")
    return 0
