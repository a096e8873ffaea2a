"""What a Snakemake command line asked for (targets, executor, cores, profiles), parsed as Snakemake does."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def command_line_facts(argv: Sequence[str]) -> dict[str, str]:
    """Targets, executor, cores and profiles of ``snakemake ARGV``, profile defaults included.

    Parsed with Snakemake's own argument parser (the profiles' entries count, as
    they did for the run); an unparsable command line (Snakemake driven through
    its API) gives no facts rather than an error.
    """
    from snakemake.cli import get_argument_parser

    try:
        args = get_argument_parser().parse_args(list(argv))
        profiles = [str(profile) for profile in args.profile or [] if profile != "none"]
        workflow_profile = args.workflow_profile or ("profiles/default" if Path("profiles/default").is_dir() else None)
        if workflow_profile and workflow_profile != "none":
            profiles.append(str(workflow_profile))
        if profiles:
            args = get_argument_parser(profiles=profiles).parse_args(list(argv))
    except (SystemExit, Exception):  # argparse exits on a command line it cannot parse
        return {}
    return {
        "targets": " ".join(args.targets) or "(default target)",
        "executor": args.executor or "local",
        "cores": str(args.cores if args.cores is not None else args.jobs),
        "profile": " ".join(profiles) or "none",
    }
