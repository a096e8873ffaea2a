"""``mlnb train-cnn``: train one variant of the blog's MNIST CNN ladder (:func:`mlnb.cnn.train.train_cnn`).

    mlnb train-cnn --data results/data/mnist/mnist.npz --variant adam-1000 --settings config.yaml \\
        --out results/train/cnn/adam-1000 [--steps 50 ...] [--device cpu ...]

``--variant`` names a variant that ``--settings`` defines (the flags ``--steps`` ... override it), or with
``--new-variant`` one that the flags define. It writes ``OUT/result.json`` and ``OUT/model.pt``; ``--timing FILE``
gets the wall times. Checkpoints go to ``--checkpoint-dir``; a stopped job (SIGTERM, SIGINT, SIGUSR1) checkpoints,
exits 128 + signal, and the same command resumes it.

Data-parallel on N GPUs (or CPU processes): ``torchrun --standalone --nproc-per-node N --no-python
mlnb train-cnn ...`` (what the rule runs for ``train.processes`` N; see :mod:`mlnb.training.distributed`).
"""

from __future__ import annotations

from mlnb.cnn.settings import CnnSettings
from mlnb.cnn.train import train_cnn
from mlnb.errors import ConfigError
from mlnb.io import Folder, check_outputs
from mlnb.settings import add_schema_flags, config_schema, read_section, schema_flag_values, settings_file
from mlnb.training.options import add_run_arguments, run_options_from_args
from mlnb.training.settings import add_train_arguments, train_settings_from_args

VARIANT_FLAGS = "variant."


def configure_parser(parser) -> None:
    add_run_arguments(parser, data_help="MNIST .npz from prepare-mnist", out_help="folder for result.json and model.pt")
    parser.add_argument("--variant", required=True, help="name of the variant in cnn.variants")
    parser.add_argument("--new-variant", action="store_true",
                        help="define --variant from the flags below when --settings does not (otherwise refused: "
                             "a mistyped name must not train with defaults)")
    cnn = parser.add_argument_group("cnn settings (defaults: config.schema.yaml)")
    cnn.add_argument("--settings", metavar="JSON|FILE",
                     help="the cnn config section as JSON, or a YAML/JSON file with it (or a whole config)")
    add_schema_flags(cnn, config_schema()["definitions"]["cnn_variant"]["properties"], VARIANT_FLAGS)
    add_train_arguments(parser)


def cnn_settings_from_args(args) -> CnnSettings:
    """The cnn section from ``--settings``, with the variant flags (``--steps`` ...) applied to ``--variant``,
    which ``--settings`` must define unless ``--new-variant`` is given."""
    mapping, origin = read_section("cnn", args.settings) if args.settings else ({}, "command line")
    settings = CnnSettings.from_mapping(mapping, origin)
    if args.variant not in settings.variants and not args.new_variant:
        known = ", ".join(sorted(settings.variants)) or "none"
        raise ConfigError(f"cnn.variants: no variant {args.variant!r} (configured: {known}); "
                          "--new-variant defines it from the flags")
    names = config_schema()["definitions"]["cnn_variant"]["properties"]
    overrides = schema_flag_values(args, names, VARIANT_FLAGS)
    if not overrides and not args.new_variant:
        return settings
    variants = {**settings.variants, args.variant: {**settings.variants.get(args.variant, {}), **overrides}}
    return CnnSettings.from_mapping({**settings.as_dict(), "variants": variants}, origin)


def run(args) -> int:
    options = run_options_from_args(args)
    check_outputs({"--data": options.data, "--settings": settings_file(args.settings),
                   "--train-settings": settings_file(args.train_settings)},
                  {"--out": Folder(options.out, ("result.json", "model.pt")), "--timing": options.timing,
                   "--checkpoint-dir": Folder(options.checkpoints("cnn", args.variant))})
    summary = train_cnn(args.variant, cnn_settings_from_args(args), train_settings_from_args(args), options)
    if summary is not None:  # None: not rank 0 of a data-parallel job
        print(f"cnn-{args.variant}: test accuracy {summary['test_accuracy']:.4f} after "
              f"{summary['settings']['steps']} steps -> {args.out}")
    return 0
