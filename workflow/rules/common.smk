# Shared by every stage: config validation, tracking arguments, source helpers.

import hashlib
import json
from pathlib import Path

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

if config["augment"]["min_transforms"] > config["augment"]["max_transforms"]:
    raise ValueError(
        "config key augment.min_transforms "
        f"({config['augment']['min_transforms']}) exceeds augment.max_transforms "
        f"({config['augment']['max_transforms']})"
    )

# Hash of the resolved config: every MLflow run records it as provenance.
CONFIG_HASH = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
TRACKING_URI = config["mlflow"]["tracking_uri"] or "default"
EXPERIMENT_MARKER = "results/mlflow/experiment.json"


def tracking_args(run_name):
    """Command-line arguments that make a stage log one MLflow run."""
    return (
        f"--tracking-uri '{TRACKING_URI}' --experiment '{config['mlflow']['experiment']}' "
        f"--run-name '{run_name}' --config-hash {CONFIG_HASH}"
    )


def is_remote(url):
    return url.startswith(("http://", "https://", "ftp://", "gdrive://"))


def source_inputs(dataset, name):
    """A local source is a rule input (so the DAG can build it); a remote one is not."""
    url = config["data"][dataset]["files"][name]["url"]
    return [] if is_remote(url) else [url]


def source_args(dataset, name):
    entry = config["data"][dataset]["files"][name]
    args = [f"--url '{entry['url']}'"]
    args += [f"--mirror '{mirror}'" for mirror in entry.get("mirrors", [])]
    if entry["md5"]:
        args.append(f"--md5 {entry['md5']}")
    return " ".join(args)


rule init_tracking:
    output:
        EXPERIMENT_MARKER,
    log:
        "results/logs/init_tracking.log",
    conda:
        "../../envs/mlnb.yaml"
    params:
        uri=TRACKING_URI,
        experiment=config["mlflow"]["experiment"],
    shell:
        "mlnb init-tracking --tracking-uri '{params.uri}' --experiment '{params.experiment}' "
        "--out {output} > {log} 2>&1"
