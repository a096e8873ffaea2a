"""``mlnb train-cnn``: train one variant of the blog's MNIST CNN ladder (:func:`mlnb.cnn.train.train_cnn`).

    mlnb train-cnn --data results/data/mnist/mnist.npz --variant adam-1000 --settings config.yaml \\
        --out results/train/cnn/adam-1000 [--steps 50 ...] [--device cpu ...]

writes ``OUT/result.json`` and ``OUT/model.pt``; ``--timing FILE`` gets the wall times. Checkpoints go to
``--checkpoint-dir``; a stopped job (SIGTERM, SIGINT, SIGUSR1) checkpoints, exits 128 + signal, and the same
command resumes it.

Data-parallel on N GPUs (or CPU processes): ``torchrun --standalone --nproc-per-node N --no-python
mlnb train-cnn ...`` (what the rule runs for ``train.processes`` N; see :mod:`mlnb.training.distributed`).
"""

from __future__ import annotations

from mlnb.cnn.settings import CnnSettings
from mlnb.cnn.train import train_cnn
from mlnb.settings import add_schema_flags, config_schema, read_section, schema_flag_values
from mlnb.training.options import add_run_arguments, run_options_from_args
from mlnb.training.settings import add_train_arguments, train_settings_from_args

VARIANT_FLAGS = "variant."


def configure_parser(parser) -> None:
    add_run_arguments(parser, data_help="MNIST .npz from prepare-mnist", out_help="folder for result.json and model.pt")
    parser.add_argument("--variant", required=True, help="name of the variant in cnn.variants")
    cnn = parser.add_argument_group("cnn settings (defaults: config.schema.yaml)")
    cnn.add_argument("--settings", metavar="JSON|FILE",
                     help="the cnn config section as JSON, or a YAML/JSON file with it (or a whole config)")
    add_schema_flags(cnn, config_schema()["definitions"]["cnn_variant"]["properties"], VARIANT_FLAGS)
    add_train_arguments(parser)


def cnn_settings_from_args(args) -> CnnSettings:
    """The cnn section from ``--settings``, with the variant flags (``--steps`` ...) applied to ``--variant``."""
    mapping, origin = read_section("cnn", args.settings) if args.settings else ({}, "command line")
    names = config_schema()["definitions"]["cnn_variant"]["properties"]
    overrides = schema_flag_values(args, names, VARIANT_FLAGS)
    if overrides:
        variants = dict(mapping.get("variants") or {})
        variants[args.variant] = {**variants.get(args.variant, {}), **overrides}
        mapping = {**mapping, "variants": variants}
    return CnnSettings.from_mapping(mapping, origin)


def run(args) -> int:
    summary = train_cnn(args.variant, cnn_settings_from_args(args), train_settings_from_args(args),
                        run_options_from_args(args))
    if summary is not None:  # None: not rank 0 of a data-parallel job
        print(f"cnn-{args.variant}: test accuracy {summary['test_accuracy']:.4f} after "
              f"{summary['settings']['steps']} steps -> {args.out}")
    return 0
