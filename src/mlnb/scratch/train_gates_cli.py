"""``mlnb train-gates``: the from-scratch network learns a logic gate over several seeds
(:func:`mlnb.scratch.gates.train_gates`).

    mlnb train-gates --gate XOR --seed 0 --settings config.yaml --out results/train/gates

It takes no data (the truth table is the data), so of the training commands' common flags
(:mod:`mlnb.training.options`) only ``--seed``, ``--out`` and MLflow's apply.
"""

from __future__ import annotations

from pathlib import Path

from mlnb import tracking
from mlnb.io import Folder, check_outputs
from mlnb.scratch.gates import BLOG_XOR_ITERATIONS, GATES, RESULT_SUFFIXES, train_gates
from mlnb.scratch.settings import GatesSettings
from mlnb.settings import add_settings_arguments, config_flag_type, settings_file, settings_from_args


def configure_parser(parser) -> None:
    parser.add_argument("--gate", required=True, choices=list(GATES), help="the logic gate to learn")
    parser.add_argument("--seed", type=config_flag_type("seed"), required=True,
                        help="master seed (seed k draws from (seed, gates, GATE, k))")
    parser.add_argument("--out", type=Path, required=True, help="output folder for <GATE>.json, curves and tables")
    add_settings_arguments(parser, GatesSettings)
    tracking.add_tracking_arguments(parser, system_metrics=True)


def run(args) -> int:
    check_outputs({"--settings": settings_file(args.settings)},
                  {"--out": Folder(args.out, tuple(f"{args.gate}{suffix}" for suffix in RESULT_SUFFIXES))})
    result = train_gates(args.gate, settings_from_args(GatesSettings, args), args.seed, args.out,
                         tracking.TrackingOptions.from_args(args))
    summary = result["summary"]
    print(f"{args.gate}: {summary['converged']}/{summary['seeds']} seeds converged; median iterations "
          f"{summary['median_iterations']}, range {summary['min_iterations']}-{summary['max_iterations']} "
          f"(blog XOR: {BLOG_XOR_ITERATIONS:,})")
    return 0
