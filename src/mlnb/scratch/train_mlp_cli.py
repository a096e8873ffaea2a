"""``mlnb train-mlp``: the from-scratch network learns MNIST with mini-batches (:func:`mlnb.scratch.mlp.train_mlp`).

    mlnb train-mlp --data results/data/mnist/mnist.npz --settings config.yaml --out results/train/mlp \\
        [--epochs 1 ...] [--device cpu --threads 1 --checkpoint-every 1000 ...]

writes ``OUT/result.json``, ``OUT/model.npz``, ``OUT/confusion.png`` and ``OUT/misclassified.png``;
``--timing FILE`` gets the wall times. A stopped job (SIGTERM, SIGINT, SIGUSR1) checkpoints to
``--checkpoint-dir``, exits 128 + signal, and the same command resumes it.
"""

from __future__ import annotations

from mlnb.io import Folder, check_outputs
from mlnb.scratch.mlp import train_mlp
from mlnb.scratch.settings import MlpSettings
from mlnb.settings import add_settings_arguments, settings_file, settings_from_args
from mlnb.training.options import add_run_arguments, run_options_from_args
from mlnb.training.settings import add_train_arguments, train_settings_from_args


def configure_parser(parser) -> None:
    add_run_arguments(parser, data_help="prepared MNIST .npz (results/data/mnist/mnist.npz)",
                      out_help="output folder: result.json, model.npz, figures")
    add_settings_arguments(parser, MlpSettings)
    add_train_arguments(parser)


def run(args) -> int:
    settings = settings_from_args(MlpSettings, args)
    options = run_options_from_args(args)
    check_outputs({"--data": options.data, "--settings": settings_file(args.settings),
                   "--train-settings": settings_file(args.train_settings)},
                  {"--out": Folder(options.out, ("result.json", "model.npz", "confusion.png", "misclassified.png")),
                   "--timing": options.timing,
                   "--checkpoint-dir": Folder(options.checkpoints("mlp", settings.backend))})
    result, timing = train_mlp(settings, train_settings_from_args(args), options)
    print(f"MLP {'-'.join(map(str, settings.layers))}: test accuracy {result['test_accuracy']:.4f} "
          f"after {settings.epochs} epoch(s), {timing['train_images_per_second']:.0f} training images/s "
          f"({settings.backend}, {result['device']})")
    return 0
