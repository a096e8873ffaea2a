"""What a Snakemake command line asked for (targets, executor, cores, profiles), parsed as Snakemake does."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path


def command_line_facts(command: str | None) -> dict[str, str]:
    """Targets, executor, cores and profiles of ``command``, the command line Snakemake reports in its
    workflow-started record, profile defaults included.

    Parsed with Snakemake's own argument parser (the profiles' entries count, as they
    did for the run), which prints nothing here, whatever the command line asks for
    (``--help``, ``--version``); none (the plugin outside a Snakemake run) or an
    unparsable one (Snakemake driven through its API) gives no facts rather than an error.
    """
    try:
        argv = shlex.split(command or "")[1:]
        if not argv:
            return {}
        args = _parse(argv)
        profiles = [str(profile) for profile in args.profile or [] if profile != "none"]
        workflow_profile = args.workflow_profile or ("profiles/default" if Path("profiles/default").is_dir() else None)
        if workflow_profile and workflow_profile != "none":
            profiles.append(str(workflow_profile))
        if profiles:
            args = _parse(argv, profiles)
    except (SystemExit, Exception):  # argparse exits on a command line it cannot parse
        return {}
    return {
        "targets": " ".join(args.targets) or "(default target)",
        "executor": args.executor or "local",
        "cores": str(args.cores if args.cores is not None else args.jobs),
        "profile": " ".join(profiles) or "none",
    }


def _parse(argv: Sequence[str], profiles: Sequence[str] | None = None):
    from snakemake.cli import get_argument_parser

    parser = get_argument_parser(profiles=profiles) if profiles else get_argument_parser()
    parser._print_message = _print_nothing  # help, version and usage errors all print through it
    return parser.parse_args(list(argv))


def _print_nothing(message: str, file=None) -> None:
    pass
