# Shared by every stage: config validation, tracking arguments, source helpers.

import csv
import hashlib
import json
import os
import shlex
from pathlib import Path

from snakemake.utils import validate

from mlnb.data import celeba_format
from mlnb.data.source import parse_source
from mlnb.errors import ConfigError
from mlnb.job_runs import EXPERIMENT_ENV, JOB_ENV, TRACKING_URI_ENV
from mlnb.tracking import pipeline_tracking_uri
from mlnb.training.launch import launcher


# Missing keys take the schema's defaults (nested sections and $ref definitions too).
validate(config, schema="../schemas/config.schema.yaml", set_default=True)

for key in ("scale_range", "intensity_range"):
    low, high = config["augment"][key]
    if low > high:
        raise ConfigError(f"config key augment.{key}: low ({low}) exceeds high ({high})")

if config["augment"]["min_transforms"] > config["augment"]["max_transforms"]:
    raise ConfigError(
        "config key augment.min_transforms "
        f"({config['augment']['min_transforms']}) exceeds augment.max_transforms "
        f"({config['augment']['max_transforms']})"
    )

# Jobs get an absolute URI (they may run in another directory); the default is
# the SQLite store under the working directory, which init_tracking creates.
TRACKING_URI = pipeline_tracking_uri(config["mlflow"])
EXPERIMENT_MARKER = "results/mlflow/experiment.json"

# The logger plugin (`snakemake --logger mlflow`) logs this invocation to the same store and experiment.
os.environ[TRACKING_URI_ENV] = TRACKING_URI
os.environ[EXPERIMENT_ENV] = config["mlflow"]["experiment"]


def job_shell(command):
    """A tracked rule's shell command, naming its job in MLNB_JOB by its (one) log file.

    The stage run the command logs then nests in the job's run that the logger
    plugin opened (mlnb.job_runs); without the plugin it is a top-level run.
    The store's absolute URI goes in beside ``{params.tracking}`` as ``{TRACKING_URI}``,
    formatted when the job runs: neither a param nor the rule's code, so a moved or
    copied project reruns nothing (a deliberate lint, as in init_tracking).
    """
    if "{params.tracking}" not in command:
        raise ValueError(f"job_shell: a tracked rule's command passes {{params.tracking}}: {command}")
    command = command.replace("{params.tracking}", "--tracking-uri {TRACKING_URI:q} {params.tracking}")
    return f"export {JOB_ENV}={{log:q}}; {command}"


# How a job runs, never what it makes: left out of settings_json unless named.
OPERATIONAL_KEYS = {"threads", "retries", "timeout", "gpu", "processes", "checkpoint_every"}


def settings_json(section, *keys):
    """The keys of config[section] that a job uses (all but the operational ones when none are named), as JSON.

    Rules put this in their params and hand it to the command as ``--settings``:
    a job then reruns when, and only when, a setting it uses changes. Operational
    knobs that never change outputs (threads, download retries and timeouts) stay
    out of it; rules read those from ``config`` in the shell command itself.
    """
    keys = keys or [key for key in config[section] if key not in OPERATIONAL_KEYS]
    return json.dumps({key: config[section][key] for key in keys}, sort_keys=True)


def tracking_args(run_name, **sections):
    """Command-line arguments that make a stage log one MLflow run.

    ``sections`` maps a config section (or a top-level key such as seed) to the JSON it ran with
    (see settings_json); they are logged as its resolved parameters
    (``config.<section>.<key>``) and hashed inside the job as provenance. The store's
    URI is not among them (it names the project's folder): job_shell adds it.
    """
    stage_config = json.dumps({section: json.loads(value) for section, value in sections.items()},
                              sort_keys=True)
    return (
        f"--experiment {shlex.quote(config['mlflow']['experiment'])} "
        f"--run-name {shlex.quote(run_name)} --stage-config {shlex.quote(stage_config)}"
    )


def _parse_sources(dataset, name):
    """The url, then the mirrors, of one configured file; an unfetchable one fails the DAG build."""
    entry = config["data"][dataset]["files"][name]
    key = f"config key data.{dataset}.files.{name}"
    return [parse_source(entry["url"], origin=f"{key}.url")] + [
        parse_source(mirror, origin=f"{key}.mirrors[{number}]") for number, mirror in enumerate(entry["mirrors"])
    ]


SOURCES = {(dataset, name): _parse_sources(dataset, name) for dataset in config["data"]
           for name in config["data"][dataset]["files"]}


def source_inputs(dataset, name):
    """Local sources (url and mirrors) are inputs of the fetch job (so the DAG can build them), and one that is
    configured but missing stops the run at DAG build, naming it, even when the output exists."""
    return [source.target for source in SOURCES[(dataset, name)] if not source.is_remote]


def source_args(dataset, name):
    url, *mirrors = SOURCES[(dataset, name)]
    args = [f"--url {shlex.quote(url.text)}", *(f"--mirror {shlex.quote(mirror.text)}" for mirror in mirrors)]
    md5 = config["data"][dataset]["files"][name]["md5"]
    if md5:
        args.append(f"--md5 {md5}")
    return " ".join(args)


# Raw files of each dataset: config key -> file name under results/data/<dataset>/.
RAW_FILES = {
    "mnist": {
        "train_images": "train-images-idx3-ubyte.gz",
        "train_labels": "train-labels-idx1-ubyte.gz",
        "test_images": "t10k-images-idx3-ubyte.gz",
        "test_labels": "t10k-labels-idx1-ubyte.gz",
    },
    "celeba": celeba_format.FILES,
    "heart": {"archive": "Task02_Heart.tar"},
}
FILE_KEYS = {
    (dataset, filename): key for dataset, files in RAW_FILES.items() for key, filename in files.items()
}


def raw(dataset, key):
    return f"results/data/{dataset}/{RAW_FILES[dataset][key]}"


# Augmented copies of the heart set (augment.smk); augment_records lists them per case.
AUGMENT_DIR = "results/augmented/heart"
AUGMENT_COPIES = range(config["augment"]["copies"])
# The copies that get a preview PNG (augment.previews: all, first or none).
AUGMENT_PREVIEW_COPIES = {"all": AUGMENT_COPIES, "first": AUGMENT_COPIES[:1], "none": []}[config["augment"]["previews"]]


def augment_mem_mb(wildcards, input):
    """An augment_case job's memory request: the command's own estimate from the files' headers and the settings."""
    from mlnb.augment.memory import estimate_mb

    return estimate_mb(input.image, input.seg, config["augment"]["dims"], config["augment"]["mode"])


def heart_cases():
    """Index rows by case (case,image,label,...), once prepare_heart has run."""
    with open(checkpoints.prepare_heart.get().output.index) as handle:
        return {row["case"]: row for row in csv.DictReader(handle)}


def heart_case_files(wildcards):
    row = heart_cases()[wildcards.case]
    return {"image": row["image"], "seg": row["label"]}


def heart_case_md5(wildcards):
    """The case's image and label checksums: a job param, so a changed volume reruns exactly its case."""
    row = heart_cases()[wildcards.case]
    return f"{row['image_md5']} {row['label_md5']}"


def augment_records(wildcards):
    return expand(f"{AUGMENT_DIR}/{{case}}/{{case}}_aug{{copy}}.json", case=heart_cases(), copy=AUGMENT_COPIES)
