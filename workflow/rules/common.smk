# Shared by every stage: config validation, the MLflow store, sources, the heart cases, train settings.
#
# This code runs while Snakemake parses and plans, so it imports the standard library and Snakemake
# alone (PyYAML comes with it): mlnb and its dependencies live in the jobs' environment (envs/mlnb.yaml).
# Where it restates a fact of the package (file names, variable names, the launcher, a formula),
# tests/workflow/test_parse_time.py checks that the two agree.

import csv
import json
import math
import os
import re
import shlex
import urllib.parse
import urllib.request
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The config's schema: workflow/schemas/ links to the package's (src/mlnb/config.schema.yaml). A git-hosted module
# reads its files from git, where a link holds its target's path: the package's file is read there instead.
SCHEMA_LINK, PACKAGE_SCHEMA = "../schemas/config.schema.yaml", "../../src/mlnb/config.schema.yaml"
with open(workflow.source_path(SCHEMA_LINK)) as handle:
    CONFIG_SCHEMA = SCHEMA_LINK if isinstance(yaml.safe_load(handle), dict) else PACKAGE_SCHEMA

# Missing keys take the schema's defaults (nested sections and $ref definitions too).
validate(config, schema=CONFIG_SCHEMA, set_default=True)

for key in ("scale_range", "intensity_range"):
    low, high = config["augment"][key]
    if low > high:
        raise WorkflowError(f"config key augment.{key}: low ({low}) exceeds high ({high})")

if config["augment"]["min_transforms"] > config["augment"]["max_transforms"]:
    raise WorkflowError(
        "config key augment.min_transforms "
        f"({config['augment']['min_transforms']}) exceeds augment.max_transforms "
        f"({config['augment']['max_transforms']})"
    )

with open(workflow.source_path(CONFIG_SCHEMA)) as handle:
    # Section -> the keys the schema marks `x-operational`: how a job runs, never what it makes.
    OPERATIONAL_KEYS = {
        section: {key for key, node in schema.get("properties", {}).items() if node.get("x-operational")}
        for section, schema in yaml.safe_load(handle)["properties"].items()
    }

# The MLflow store: what the user configured, null being "default" (the SQLite store under the working
# directory, which every job shares, on Slurm too). Jobs and the logger plugin read it from the environment
# (mlnb.job_runs' names), not from a param: a moved project, or a new store, reruns nothing.
TRACKING_URI_ENV, EXPERIMENT_ENV, JOB_ENV = "MLNB_TRACKING_URI", "MLNB_EXPERIMENT", "MLNB_JOB"
# Operational: the bound on every MLflow request (the plugin's too) and the training runs' system-metrics interval.
TRACKING_TIMEOUT_ENV, SYSTEM_METRICS_ENV = "MLNB_TRACKING_TIMEOUT", "MLNB_SYSTEM_METRICS_INTERVAL"
os.environ[TRACKING_URI_ENV] = config["mlflow"]["tracking_uri"] or "default"
os.environ[EXPERIMENT_ENV] = config["mlflow"]["experiment"]
os.environ[TRACKING_TIMEOUT_ENV] = str(config["mlflow"]["timeout"])
# MLflow reads its HTTP settings from the environment at every request: bounded here, on the main thread before
# any job starts, so the logger plugin's requests end within mlflow.timeout too (mlnb.tracking.request_settings).
REQUEST_ATTEMPTS = 3


def mlflow_request_settings(timeout):
    attempts = max(1, min(REQUEST_ATTEMPTS, int(timeout)))
    return {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, int(timeout / attempts))),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(attempts - 1),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    }


os.environ.update(mlflow_request_settings(config["mlflow"]["timeout"]))
os.environ[SYSTEM_METRICS_ENV] = str(config["mlflow"]["system_metrics_interval"])
EXPERIMENT_MARKER = "results/mlflow/experiment.json"


def job_shell(command, training=False):
    """A tracked rule's shell command: it logs to the store in the environment, each request bounded by
    mlflow.timeout, its job named in MLNB_JOB by its (one) log file, so the stage's run nests in the job's run
    of the logger plugin (mlnb.job_runs); a training command also samples system metrics."""
    if "{params.tracking}" not in command:
        raise ValueError(f"job_shell: a tracked rule's command passes {{params.tracking}}: {command}")
    store = f'--tracking-uri "${TRACKING_URI_ENV}" --tracking-timeout "${TRACKING_TIMEOUT_ENV}"'
    if training:
        store += f' --system-metrics-interval "${SYSTEM_METRICS_ENV}"'
    command = command.replace("{params.tracking}", f"{store} {{params.tracking}}")
    return f"export {JOB_ENV}={{log:q}}; {command}"


def settings_json(section, *keys):
    """The keys of config[section] that a job uses (all but the operational ones when none are named), as JSON.

    Rules put this in their params and hand it to the command as ``--settings``:
    a job then reruns when, and only when, a setting it uses changes. Operational
    keys (threads, download retries and timeouts...) reach commands as resources.
    """
    keys = keys or [key for key in config[section] if key not in OPERATIONAL_KEYS[section]]
    return json.dumps({key: config[section][key] for key in keys}, sort_keys=True)


def tracking_args(run_name, **sections):
    """Command-line arguments that make a stage log one MLflow run.

    ``sections`` maps a config section (or a top-level key such as seed) to the JSON it ran with
    (see settings_json); they are logged as its resolved parameters
    (``config.<section>.<key>``) and hashed inside the job as provenance. The store
    is not among them: job_shell adds it.
    """
    stage_config = json.dumps({section: json.loads(value) for section, value in sections.items()}, sort_keys=True)
    return (
        f"--experiment {shlex.quote(config['mlflow']['experiment'])} "
        f"--run-name {shlex.quote(run_name)} --stage-config {shlex.quote(stage_config)}"
    )


# Sources, classified as mlnb.data.source.parse_source does (mlnb fetch parses them again).
DRIVE_ID = re.compile(r"[A-Za-z0-9_-]{10,}")


def local_source(text, origin):
    """The file a local source names, None for a download; an unfetchable source fails the DAG build."""
    scheme, separator, rest = text.partition("://")
    scheme = scheme.lower() if separator else ""
    if scheme in ("http", "https"):
        if not urllib.parse.urlsplit(text).netloc:
            raise WorkflowError(f"{origin} {text!r}: the URL has no host")
        return None
    if scheme == "gdrive":
        if not DRIVE_ID.fullmatch(rest):
            raise WorkflowError(f"{origin} {text!r}: expected gdrive://FILE_ID (letters, digits, '-' and '_')")
        return None
    if scheme == "file":
        parsed = urllib.parse.urlsplit(text)
        if parsed.netloc not in ("", "localhost"):
            raise WorkflowError(f"{origin} {text!r}: only local file:// URLs are supported")
        return urllib.request.url2pathname(parsed.path)
    if scheme:
        raise WorkflowError(
            f"{origin} {text!r}: unsupported scheme {scheme}:// (use http(s)://, gdrive://FILE_ID, file:// or a path)"
        )
    return text


def configured_sources(dataset, name):
    """The url, then the mirrors, of one configured file, each with its config key."""
    entry = config["data"][dataset]["files"][name]
    key = f"config key data.{dataset}.files.{name}"
    return [(entry["url"], f"{key}.url")] + [
        (mirror, f"{key}.mirrors[{number}]") for number, mirror in enumerate(entry["mirrors"])
    ]


# (dataset, name) -> the local files among its sources (every source is checked here, at DAG build).
LOCAL_SOURCES = {
    (dataset, name): [
        path
        for path in (local_source(text, origin) for text, origin in configured_sources(dataset, name))
        if path is not None
    ]
    for dataset in config["data"]
    for name in config["data"][dataset]["files"]
}


def source_inputs(dataset, name):
    """Local sources (url and mirrors) are inputs of the fetch job (so the DAG can build them), and one that is
    configured but missing stops the run at DAG build, naming it, even when the output exists."""
    return LOCAL_SOURCES[(dataset, name)]


def source_args(dataset, name):
    (url, _), *mirrors = configured_sources(dataset, name)
    args = [f"--url {shlex.quote(url)}", *(f"--mirror {shlex.quote(mirror)}" for mirror, _ in mirrors)]
    md5 = config["data"][dataset]["files"][name]["md5"]
    if md5:
        args.append(f"--md5 {md5}")
    return " ".join(args)


# Raw files of each dataset: config key -> file name under results/data/<dataset>/ (celeba's: celeba_format.FILES).
RAW_FILES = {
    "mnist": {
        "train_images": "train-images-idx3-ubyte.gz",
        "train_labels": "train-labels-idx1-ubyte.gz",
        "test_images": "t10k-images-idx3-ubyte.gz",
        "test_labels": "t10k-labels-idx1-ubyte.gz",
    },
    "celeba": {
        "images": "img_align_celeba.zip",
        "landmarks": "list_landmarks_align_celeba.txt",
        "partition": "list_eval_partition.txt",
    },
    "heart": {"archive": "Task02_Heart.tar"},
}
FILE_KEYS = {(dataset, filename): key for dataset, files in RAW_FILES.items() for key, filename in files.items()}


def raw(dataset, key):
    return f"results/data/{dataset}/{RAW_FILES[dataset][key]}"


# Augmented copies of the heart set (augment.smk); augment_records lists them per case.
AUGMENT_DIR = "results/augmented/heart"
AUGMENT_COPIES = range(config["augment"]["copies"])
# The copies that get a preview PNG (augment.previews: all, first or none).
AUGMENT_PREVIEW_COPIES = {"all": AUGMENT_COPIES, "first": AUGMENT_COPIES[:1], "none": []}[config["augment"]["previews"]]
# mlnb.augment.memory's constants: the interpreter with its libraries, and the slack over the counted arrays.
AUGMENT_BASELINE_BYTES, AUGMENT_SLACK = 150 * 2**20, 1.15
# The heart index records shapes, not element types: the request assumes the widest a volume loads as
# (float64: nibabel scales stored values), for the image and its segmentation alike.
LOADED_ITEMSIZE = 8


def augment_peak_bytes(shape, image_itemsize, seg_itemsize, dims, mode):
    """mlnb.augment.memory.required_bytes for a volume and its segmentation of ``shape`` (read in no file)."""
    side, depth = min(shape[:2]), tuple(shape[2:])
    out_shape = (side, side, *depth) if dims is None else (*dims[:2], *(dims[2:] or depth))
    voxels_in, voxels_out = math.prod(shape), math.prod(out_shape)
    warped = math.prod(out_shape[:2]) * math.prod(depth)  # before the slice axis is resampled
    code = 1 if seg_itemsize == 1 else 2
    total = voxels_in * (image_itemsize + 4 + 1 + seg_itemsize + 2 * code)
    total += warped * (4 + code) + voxels_out * (3 * 4 + 2 * code + seg_itemsize)
    if mode == "sequential":
        total += 2 * 8 * voxels_in
    return int(AUGMENT_BASELINE_BYTES + AUGMENT_SLACK * total)


def heart_cases():
    """Index rows by case (case,image,label,...,shape,...), once prepare_heart has run."""
    with open(checkpoints.prepare_heart.get().output.index) as handle:
        return {row["case"]: row for row in csv.DictReader(handle)}


def augment_mem_mb(wildcards):
    """An augment_case job's memory request (whole MB, rounded up), from its case's shape in the heart index."""
    shape = tuple(int(size) for size in heart_cases()[wildcards.case]["shape"].split("x"))
    needed = augment_peak_bytes(
        shape, LOADED_ITEMSIZE, LOADED_ITEMSIZE, config["augment"]["dims"], config["augment"]["mode"]
    )
    return -(-needed // 1_000_000)


def heart_case_files(wildcards):
    row = heart_cases()[wildcards.case]
    return {"image": row["image"], "seg": row["label"]}


def heart_case_md5(wildcards):
    """The case's image and label checksums: a job param, so a changed volume reruns exactly its case."""
    row = heart_cases()[wildcards.case]
    return f"{row['image_md5']} {row['label_md5']}"


def augment_records(wildcards):
    return expand(f"{AUGMENT_DIR}/{{case}}/{{case}}_aug{{copy}}.json", case=heart_cases(), copy=AUGMENT_COPIES)


def train_launcher(processes):
    """mlnb.training.launch.launcher: the shell prefix that runs a command as ``processes`` data-parallel
    processes (torchrun, forwarding Slurm's SIGUSR1 warning; 120 s for the workers to checkpoint and stop)."""
    if processes == 1:
        return ""
    return (
        f"torchrun --standalone --nproc-per-node={processes} "
        "--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1 --shutdown-timeout=120 --no-python "
    )


# What a training job uses of the train section (not threads, gpu, processes, checkpoint_every: how it runs).
TRAIN_SETTINGS = settings_json("train")
# A CNN or DCGAN job runs as train.processes data-parallel processes (under torchrun when more
# than one: mlnb.training.distributed), each with train.threads threads, train.gpu GPUs and its own
# copy of the data in memory: the job asks for that many times each. The launcher and the checkpoint
# interval are resources (launcher, checkpoint_every), so changing them reruns nothing.
TRAIN_PROCESSES = config["train"]["processes"]
TRAIN_LAUNCHER = train_launcher(TRAIN_PROCESSES)
TRAIN_JOB_THREADS = config["train"]["threads"] * TRAIN_PROCESSES
TRAIN_JOB_GPUS = config["train"]["gpu"] * TRAIN_PROCESSES


def package_source(root):
    """What pip installs mlnb from: this workflow's source ``root`` as Snakemake found it (None when it cannot tell).

    A local folder (a clone, or a module or deployment naming one), or the git clone Snakemake caches for a
    git-hosted module, at the module's ref.
    """
    from snakemake.sourcecache import HostingProviderFile, LocalGitFile, LocalSourceFile

    if isinstance(root, LocalSourceFile):
        return os.path.normpath(root.get_path_or_uri(secret_free=True))
    if isinstance(root, LocalGitFile):
        return f"git+file://{os.path.abspath(root.repo_path)}@{root.ref}"
    if isinstance(root, HostingProviderFile):
        return f"git+file://{root.hosted_repo.repo_clone}@{root.ref}"
    return None


# Snakemake runs a copy of envs/mlnb.post-deploy.sh from its working directory, which says nothing of where the
# workflow lives: the script installs mlnb from the source named here (environments are created after parsing).
SOURCE_ENV = "MLNB_SOURCE"
if (mlnb_source := package_source(workflow.current_basedir.join("../.."))) is not None:
    os.environ[SOURCE_ENV] = mlnb_source
