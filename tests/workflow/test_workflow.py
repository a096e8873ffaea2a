"""Workflow tests: lint, config validation, a dry run of the real config, and the offline demo end to end."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlnb.segment.settings import ARMS as SEGMENT_ARMS

REPO = Path(__file__).resolve().parents[2]
WORKFLOW_FILES = ("Snakefile", "config.yaml", "workflow", "envs")


def snakemake(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


DEMO_CONFIG = "workflow/config/demo.yaml"
RUN_ARGS = ("--cores", "2", "--workflow-profile", "workflow/profiles/default")
DEMO_ARGS = (*RUN_ARGS, "--configfile", DEMO_CONFIG)
# The CNN ladder of config.yaml (and the demo): one rule per variant.
DEMO_CNN_RULES = ("sgd_1000", "bn_dropout_1000", "adam_1000", "adam_20000", "fast")
# The demo's segmentation arms, each trained on its two folds.
DEMO_ARMS = ("none", "onthefly")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def copy_workflow(folder: Path) -> Path:
    """A copy of the workflow in ``folder``, so its results/ starts empty."""
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, folder / name)
        else:
            shutil.copy2(source, folder / name)
    return folder


@pytest.fixture()
def workdir(tmp_path):
    return copy_workflow(tmp_path)


def pipeline_outputs(folder: Path) -> dict[str, bytes]:
    """Every output file except MLflow's store, logs, timings, training checkpoints (they name
    the MLflow run they continue) and test_browse's screenshots of the UI, by relative path."""
    volatile = {"mlflow", "logs", "benchmarks", "checkpoints", "ui"}
    results = folder / "results"
    return {str(path.relative_to(results)): path.read_bytes() for path in sorted(results.rglob("*"))
            if path.is_file() and not volatile & set(path.relative_to(results).parts)}


def test_lint_is_clean():
    """No lint at all: every value reaches a command through params, resources or the environment."""
    result = snakemake("--lint", cwd=REPO)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Lints for" not in output, output
    assert "Congratulations, your workflow is in a good condition!" in output, output


def test_rules_are_formatted_with_snakefmt():
    snakefmt = Path(sys.executable).parent / "snakefmt"
    result = subprocess.run([str(snakefmt), "--check", "Snakefile", "workflow/rules"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_dry_run_plans_the_real_config(workdir):
    result = snakemake("-n", "--quiet", "rules", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "fetch" in result.stdout and "prepare_celeba" in result.stdout
    # the segmentation study: every arm the package knows, on 5 folds, then one report
    planned = planned_jobs(workdir)
    assert (planned["train_segment"], planned["report_segment"]) == (5 * len(SEGMENT_ARMS), 1)
    assert planned["prepare_segment"] == planned["prepare_segment_copies"] == 1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("faces:\n  size: big\n", r"'big' is not of type 'integer'.*\['faces'\]\['size'\]"),
        ("facez:\n  size: 64\n", r"'facez' was unexpected"),
        ("data:\n  celeba:\n    files:\n      images:\n        url: x\n        md5: nothex\n",
         r"'nothex' does not match.*\['data'\]\['celeba'\]\['files'\]\['images'\]\['md5'\]"),
        ("augment:\n  min_transforms: 4\n  max_transforms: 2\n", r"augment\.min_transforms \(4\) exceeds"),
        ("augment:\n  scale_range: [1.2, 0.9]\n", r"augment\.scale_range: low \(1\.2\) exceeds high \(0\.9\)"),
        ("data:\n  heart:\n    files:\n      archive: {url: 'ftp://example.org/a.tar', md5: null}\n",
         r"config key data\.heart\.files\.archive\.url 'ftp://example\.org/a\.tar': unsupported scheme ftp://"),
        ("data:\n  heart:\n    files:\n      archive: {url: a.tar, mirrors: ['s3://b/a.tar'], md5: null}\n",
         r"config key data\.heart\.files\.archive\.mirrors\[0\] 's3://b/a\.tar': unsupported scheme s3://"),
    ],
)
def test_bad_config_names_the_key(workdir, override, message):
    (workdir / "bad.yaml").write_text(override)
    result = snakemake("-n", "--configfile", "bad.yaml", cwd=workdir)
    assert result.returncode != 0
    assert re.search(message, result.stdout + result.stderr, re.DOTALL), result.stdout + result.stderr


def planned_fetch_inputs(workdir: Path, override: str) -> dict[str, list[str]]:
    """fetch jobs planned by a dry run with ``override``: output -> its inputs (the local sources)."""
    (workdir / "override.yaml").write_text(override)
    result = snakemake("-n", "--configfile", "override.yaml", cwd=workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = re.findall(r"^rule fetch:\n((?:    .*\n)+)", result.stdout, re.MULTILINE)
    planned = {}
    for job in jobs:
        fields = dict(re.findall(r"^\s+(\w+): (.*)$", job, re.MULTILINE))
        planned[fields["output"]] = fields["input"].split(", ") if "input" in fields else []
    return planned


def test_sources_are_classified_by_the_fetch_parser(workdir):
    archive = workdir / "local" / "Task02 Heart.tar"
    archive.parent.mkdir()
    archive.write_bytes(b"not read by a dry run")
    url = archive.as_uri()  # file:// with the space percent-encoded
    override = ("data:\n  heart:\n    files:\n"
                f"      archive: {{url: '{url}', md5: null}}\n"
                "  celeba:\n    files:\n"
                "      landmarks: {url: 'HTTPS://example.org/list_landmarks_align_celeba.txt', md5: null}\n")
    planned = planned_fetch_inputs(workdir, override)
    # a file:// URL is the local file it names, an upper-case scheme is still a download
    assert planned["results/data/heart/Task02_Heart.tar"] == [str(archive)]
    assert planned["results/data/celeba/list_landmarks_align_celeba.txt"] == []
    assert len(planned) == 8


# Parses the workflow (no DAG) and writes the config its rules see: merged, validated, defaults filled.
CONFIG_DUMP_SNAKEFILE = ('include: "Snakefile"\n\n'
                         'with open("merged.json", "w") as handle:\n    json.dump(config, handle)\n')


def workflow_config(folder: Path, *args: str) -> dict:
    (folder / "dump.smk").write_text(CONFIG_DUMP_SNAKEFILE)
    result = snakemake("-s", "dump.smk", "--list-rules", *args, cwd=folder)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((folder / "merged.json").read_text())


def leaves(tree: dict, prefix: str = "") -> dict[str, object]:
    """Dotted key -> value of every non-mapping value (lists are values)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(leaves(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_the_demo_config_overrides_only_the_keys_it_lists(workdir):
    real = workflow_config(workdir)
    demo = workflow_config(workdir, "--configfile", DEMO_CONFIG)
    listed = leaves(yaml.safe_load((workdir / DEMO_CONFIG).read_text()))
    assert leaves(real).keys() == leaves(demo).keys()
    differing = {key for key in leaves(real) if leaves(real)[key] != leaves(demo)[key]}
    assert differing == listed.keys()  # every listed key differs (none is a redundant copy) ...
    assert {key: leaves(demo)[key] for key in differing} == listed  # ... and takes the demo's value
    assert {"mlflow.experiment", "faces.shards", "augment.copies", "data.heart.files.archive.url"} <= differing


def test_missing_keys_take_the_schema_defaults(workdir):
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    del config["download"]  # a whole section
    del config["faces"]["preview"], config["augment"]["copies"]  # keys of sections
    del config["data"]["heart"]["files"]["archive"]["mirrors"]  # a key of a $ref definition
    (workdir / "sparse.yaml").write_text(yaml.safe_dump(config))
    filled = workflow_config(workdir, "--replace-workflow-config", "--configfile", "sparse.yaml")
    assert filled["download"] == {"retries": 3, "timeout": 60}
    assert (filled["faces"]["preview"], filled["augment"]["copies"]) == (64, 4)
    assert filled["data"]["heart"]["files"]["archive"]["mirrors"] == []


@pytest.mark.parametrize(("override", "store"), [("", "default"), (
    "mlflow:\n  tracking_uri: http://127.0.0.1:5000\n", "http://127.0.0.1:5000")], ids=["default", "server"])
def test_jobs_log_to_the_configured_store(workdir, override, store):
    """What the user configured ("default" for null: the store under the working directory, which every command
    resolves in its own, the workflow's): init_tracking as a param, the tracked jobs (and the logger plugin) from
    the environment the Snakefile sets, so that neither a moved project nor a new store reruns them."""
    (workdir / "override.yaml").write_text(override or "{}\n")
    (workdir / "env.smk").write_text('include: "Snakefile"\n\nprint("store:", os.environ["MLNB_TRACKING_URI"])\n')
    result = snakemake("-s", "env.smk", "-n", "-p", "--forceall", "results/train/gates/XOR.json",
                       "--configfile", "override.yaml", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"store: {store}\n" in result.stdout
    commands = [line for line in result.stdout.splitlines() if line.startswith("Shell command: ")]
    assert len(commands) == 2, commands  # init_tracking's, train_gates'
    assert f"mlnb init-tracking --tracking-uri {store} " in commands[0], commands
    assert ' --tracking-uri "$MLNB_TRACKING_URI" ' in commands[1], commands


def test_a_data_parallel_training_job_runs_under_torchrun_and_asks_for_every_process(workdir):
    """train.processes 2: the CNN and DCGAN jobs run under torchrun and ask for two processes' GPUs, threads
    and memory; the real statistics (one process) do not."""
    (workdir / "override.yaml").write_text("train:\n  processes: 2\n  threads: 3\n  gpu: 1\n")
    result = snakemake("-n", "-p", "--cores", "12", "results/train/cnn/adam-1000/result.json",
                       "results/dcgan/mnist/summary.json", "--configfile", "override.yaml", cwd=workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = {rule: (details, command) for rule, details, command in
            re.findall(r"^rule (\w+):\n(.*?)^Shell command: (.*?)$", result.stdout, re.MULTILINE | re.DOTALL)}
    launch = "torchrun --standalone --nproc-per-node=2 --signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1 "
    for rule in ("train_cnn_adam_1000", "train_dcgan"):
        details, command = jobs[rule]
        assert launch in command and "--no-python mlnb train-" in command and " --threads 6 " in command, command
        resources = dict(re.findall(r"\b(\w+)=(\w+)", re.search(r"resources: (.*)", details).group(1)))
        assert (resources["gpu"], resources["mem_mb"], resources["nodes"]) == ("2", "8000", "1"), details
    details, command = jobs["dcgan_real_stats"]
    assert "torchrun" not in command and re.search(r"\bgpu=1\b", details), details


LOCAL_RULES_SCRIPT = """
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, ResourceSettings
with SnakemakeApi() as api:
    workflow = api.workflow(resource_settings=ResourceSettings(), config_settings=ConfigSettings(),
                            snakefile=Path("Snakefile"), workdir=Path("."))
    print(" ".join(sorted(workflow._workflow._localrules)))  # the rules declared local, whatever the executor
"""


def test_downloads_and_setup_run_on_the_submitting_machine():
    result = subprocess.run([sys.executable, "-c", LOCAL_RULES_SCRIPT], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["demo_celeba", "demo_heart", "demo_mnist", "fetch", "init_tracking"]


@pytest.mark.slow
def test_offline_demo_runs_end_to_end(demo_dir):
    results = demo_dir / "results"
    assert (results / "data" / "mnist" / "mnist.npz").is_file()
    assert (results / "reports" / "data" / "summary.json").is_file()
    for name in ("mnist", "celeba", "heart"):
        assert (results / "reports" / "data" / f"{name}_preview.png").stat().st_size > 0
    # Every CelebA image is accounted for in the faces manifest, in index order.
    index = [row["member"] for row in csv.DictReader(open(results / "data" / "celeba" / "index.csv"))]
    manifest = list(csv.DictReader(open(results / "faces" / "celeba" / "manifest.csv")))
    assert [row["source"] for row in manifest] == index
    faces = np.load(results / "faces" / "celeba" / "faces.npy", mmap_mode="r")
    assert faces.shape[1:] == (64, 64, 3) and faces.dtype == np.uint8
    assert faces.shape[0] == sum(row["status"] == "aligned" for row in manifest) > 0.8 * len(index)
    # Every MRI case has its augmented copies.
    augmented = list(csv.DictReader(open(results / "augmented" / "heart" / "manifest.csv")))
    assert len(augmented) == DEMO_CASES * 2
    # Every CNN variant trained, and the ladder lists them beside the blog.
    ladder = (results / "reports" / "cnn_ladder.md").read_text()
    for name in DEMO_CNN_RULES:
        variant = name.replace("_", "-")
        assert json.loads((results / "train" / "cnn" / variant / "result.json").read_text())["variant"] == variant
        assert f"| `{variant}` |" in ladder
    assert "| 64.93 % |" in ladder
    # Both DCGANs trained: grids, GIF, Turing page, FID with its counts, the faces' detection rate.
    for name in ("celeba", "mnist"):
        dcgan = results / "dcgan" / name
        summary = json.loads((dcgan / "summary.json").read_text())
        assert [entry["generated"] for entry in summary["fid"]] == [32] and summary["fid"][0]["real"] == 64
        assert summary["steps"] == 2 * (summary["images"] // 32)
        assert len(list((dcgan / "samples").glob("step_*.png"))) >= 1 and (dcgan / "samples.gif").stat().st_size
        assert (dcgan / "turing.html").read_text().count("data-truth=") == 24
    assert set(json.loads((results / "dcgan" / "celeba" / "summary.json").read_text())["face_rates"]) == {
        "face_rate_generated", "face_rate_real", "face_rate_samples"}
    # Both demo arms trained on both folds (every case held out once per arm) and are reported against none.
    for arm in DEMO_ARMS:
        held_out = [case for fold in (0, 1) for case in
                    json.loads((results / "segment" / arm / f"fold{fold}" / "metrics.json").read_text())["cases"]]
        assert len(held_out) == len(set(held_out)) == DEMO_CASES
        assert sorted(path.stem for path in (results / "segment" / arm).glob("fold*/predictions/*.nii.gz")) == [
            name + ".nii" for name in sorted(held_out)]
    segmentation = (results / "reports" / "segmentation.md").read_text()
    assert all(f"| {arm} |" in segmentation for arm in DEMO_ARMS) and "0.93" in segmentation, segmentation
    assert all((results / "reports" / "segmentation" / name).stat().st_size for name in (
        "dice_per_case.png", "best_case.png", "worst_case.png"))
    # No temporary or partial file is left anywhere.
    assert not [p for p in results.rglob("*") if ".part" in p.name]
    # Every MLflow run finished: the stages' own runs, and the logger plugin's invocation and job runs.
    with sqlite3.connect(results / "mlflow" / "mlflow.db") as db:
        assert {status for (status,) in db.execute("select status from runs")} == {"FINISHED"}
        statuses = dict(db.execute("select r.name, r.status from runs r join tags t on t.run_uuid = r.run_uuid "
                                   "where t.key = 'mlnb.stage'").fetchall())
        params = db.execute("select r.name, p.key from params p join runs r on p.run_uuid = r.run_uuid").fetchall()
        tags = db.execute("select r.name, t.key from tags t join runs r on t.run_uuid = r.run_uuid").fetchall()
    cnn_runs = {f"cnn-{name.replace('_', '-')}" for name in DEMO_CNN_RULES} | {"cnn-ladder"}
    gate_runs = {f"gates-{gate}" for gate in ("xor", "and", "or", "xnor", "report")}
    segment_runs = {f"segment-{arm}-fold{fold}" for arm in DEMO_ARMS for fold in (0, 1)} | {"segment-report"}
    assert statuses == {"data": "FINISHED", "faces-celeba": "FINISHED", "augment-heart": "FINISHED",
                        "dcgan-celeba": "FINISHED", "dcgan-mnist": "FINISHED",
                        **dict.fromkeys(cnn_runs | gate_runs | segment_runs | {"mlp-numpy"}, "FINISHED")}
    for run in statuses:  # provenance and the resolved config of every run; input checksums of those with inputs
        assert {(run, "git_commit"), (run, "config_hash"), (run, "version.torch")} <= set(tags)
        assert any(name == run and key.startswith("config.") for name, key in params), run
        assert run in gate_runs or any(name == run and key.startswith("input_md5.") for name, key in params), run
    # The from-scratch network: every gate over the demo's seeds, and MNIST.
    assert "| XOR | 3/3 |" in (results / "train" / "gates" / "report.md").read_text()
    assert json.loads((results / "train" / "mlp" / "result.json").read_text())["test_accuracy"] > 0.8

    again = snakemake(*DEMO_ARGS, cwd=demo_dir, timeout=300)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_every_training_run_records_its_data_user_commit_and_machine(demo_dir):
    """What MLflow's users look for in a training run, read back through MLflow's client after the demo."""
    import mlflow
    import mlflow.pytorch
    import torch

    client = mlflow.MlflowClient(f"sqlite:///{demo_dir / 'results' / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mlnb-demo").experiment_id
    runs = {run.info.run_name: run for run in client.search_runs([experiment], max_results=1000)}
    training = {*(f"cnn-{name.replace('_', '-')}" for name in DEMO_CNN_RULES), "dcgan-celeba", "dcgan-mnist",
                "mlp-numpy", *(f"gates-{gate}" for gate in ("xor", "and", "or", "xnor")),
                *(f"segment-{arm}-fold{fold}" for arm in DEMO_ARMS for fold in (0, 1))}
    assert training <= runs.keys()
    for name in sorted(training):
        run = runs[name]
        assert run.inputs.dataset_inputs, f"{name}: no dataset"
        assert run.data.tags["mlflow.user"] not in ("", "unknown"), name
        assert len(run.data.tags["mlflow.source.git.commit"]) == 40, name
        assert "system/cpu_utilization_percentage" in run.data.metrics, f"{name}: no system metrics"
    # the CNN as MLflow's users load it, by its run and name: the demo's test digits classified as in training
    mlflow.set_tracking_uri(client.tracking_uri)
    loaded = mlflow.pytorch.load_model(f"runs:/{runs['cnn-adam-1000'].info.run_id}/cnn")
    with np.load(demo_dir / "results" / "data" / "mnist" / "mnist.npz") as mnist:
        digits, labels = mnist["x_test"][:, None].astype(np.float32) / 255, mnist["y_test"]
    with torch.no_grad():
        accuracy = (loaded(torch.from_numpy(digits)).argmax(1).numpy() == labels).mean()
    result = json.loads((demo_dir / "results" / "train" / "cnn" / "adam-1000" / "result.json").read_text())
    assert abs(accuracy - result["test_accuracy"]) < 0.005, (accuracy, result["test_accuracy"])


@pytest.mark.slow
def test_same_config_and_seed_give_byte_identical_outputs(demo_dir, tmp_path):
    second = copy_workflow(tmp_path)
    result = snakemake(*DEMO_ARGS, cwd=second, timeout=1500)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    first_outputs, second_outputs = pipeline_outputs(demo_dir), pipeline_outputs(second)
    assert first_outputs.keys() == second_outputs.keys()
    assert len(first_outputs) > 50
    differing = [name for name in first_outputs if first_outputs[name] != second_outputs[name]]
    assert differing == []


@pytest.mark.slow
def test_the_report_gathers_every_stage_figure(demo_dir, tmp_path):
    """`snakemake --report` after the demo: one self-contained HTML file with each stage's category."""
    report = tmp_path / "report.html"
    result = snakemake(*DEMO_ARGS, "--report", str(report), cwd=demo_dir, timeout=600)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    html = report.read_text()
    for category in ("Data", "Faces", "Augmentation", "MNIST CNN ladder", "Logic gates", "From-scratch MLP", "DCGAN",
                     "segmentation"):
        assert category in html, category
    assert "samples.gif" in html and "cnn_ladder.md" in html and "segmentation.md" in html


def planned_jobs(folder: Path, *args: str) -> dict[str, int]:
    """Rule -> number of jobs that a dry run plans (Snakemake's job-stats table; {} when nothing)."""
    result = snakemake("-n", "--quiet", "rules", *args, cwd=folder)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    if "Nothing to be done" in output:
        return {}
    table = re.search(r"^job\s+count\n-+\s+-+\n(.*?)^total\s+\d+$", output, re.MULTILINE | re.DOTALL)
    assert table, output[-3000:]
    return {rule: int(count) for rule, count in (line.split() for line in table.group(1).splitlines())}


DEMO_CASES, DEMO_SHARDS = 8, 2
#: the faces' DCGAN jobs, downstream of every faces edit
DCGAN_FACES = {"dcgan_real_stats": 1, "train_dcgan": 1}


def runs_named(folder: Path, name: str) -> int:
    """How many MLflow runs of this name the default store under ``folder`` holds."""
    with sqlite3.connect(folder / "results" / "mlflow" / "mlflow.db") as db:
        return db.execute("select count(*) from runs where name = ?", (name,)).fetchone()[0]


@pytest.mark.slow
def test_a_moved_demo_plans_nothing(demo_dir, tmp_path):
    """The store's absolute URI is no param: the demo copied elsewhere (the same as moved, for Snakemake's
    records) is up to date there, and a job it does rerun logs to the store under its new folder."""
    moved = tmp_path / "elsewhere" / "demo"
    shutil.copytree(demo_dir, moved, symlinks=True)  # copy2: the files keep their times
    assert planned_jobs(moved, *DEMO_ARGS) == {}
    logged = runs_named(demo_dir, "gates-report")
    result = snakemake("--forcerun", "report_gates", *DEMO_ARGS, cwd=moved, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (runs_named(demo_dir, "gates-report"), runs_named(moved, "gates-report")) == (logged, logged + 1)


@pytest.mark.slow
@pytest.mark.parametrize(("edit", "planned"), [
    # operational knobs: how a job runs, never what it makes
    ("download:\n  retries: 7\n", {}),
    ("download:\n  timeout: 17\n", {}),
    ("faces:\n  threads: 3\n", {}),
    ("augment:\n  threads: 2\n", {}),
    ("mlflow:\n  timeout: 5\n", {}),
    # stage settings: that stage's jobs and what depends on them, nothing else
    ("faces:\n  preview: 5\n", {"report_faces": 1, "all": 1}),
    ("faces:\n  upsample: 1\n", {"align_faces": DEMO_SHARDS, "gather_faces": 1, "report_faces": 1, **DCGAN_FACES,
                                   "all": 1}),
    ("augment:\n  copies: 3\n", {"augment_case": DEMO_CASES, "gather_augment": 1, "all": 1}),
    # training: how a job runs plans nothing; a variant's edit reruns that variant and the ladder
    ("train:\n  threads: 1\n  gpu: 1\n  processes: 2\n  checkpoint_every: 7\n", {}),
    ("cnn:\n  variants:\n    adam-1000: {steps: 31}\n", {"train_cnn_adam_1000": 1, "report_ladder": 1, "all": 1}),
    ("cnn:\n  blog_accuracy: {sgd-1000: 0.65}\n", {"report_ladder": 1, "all": 1}),
    ("train:\n  log_every: 5\n", {f"train_cnn_{name}": 1 for name in DEMO_CNN_RULES}
     | {"report_ladder": 1, "train_dcgan": 2, "train_segment": 4, "report_segment": 1, "all": 1}),
    # the DCGAN: a training setting reruns both trainings; the real statistics only for their subset size
    ("dcgan:\n  epochs: 3\n", {"train_dcgan": 2, "all": 1}),
    ("dcgan:\n  fid_real_samples: 50\n", {"dcgan_real_stats": 2, "train_dcgan": 2, "all": 1}),
    # segmentation: an operational knob plans nothing, an added arm trains only itself, a policy range only the
    # arms that augment on the fly
    ("segment:\n  inference_batch: 4\n", {}),
    ("segment:\n  arms: [none, onthefly, flip]\n", {"train_segment": 2, "report_segment": 1, "all": 1}),
    ("augment:\n  rotation_degrees: 5.0\n", {"augment_case": DEMO_CASES, "gather_augment": 1, "train_segment": 2,
                                             "report_segment": 1, "all": 1}),
], ids=["download.retries", "download.timeout", "faces.threads", "augment.threads", "mlflow.timeout",
        "faces.preview", "faces.upsample", "augment.copies", "train.operational", "cnn.variant", "cnn.blog_accuracy",
        "train.log_every", "dcgan.epochs", "dcgan.fid_real_samples", "segment.inference_batch", "segment.arms",
        "augment.rotation_degrees"])
def test_an_edit_reruns_exactly_the_jobs_it_changes(demo_dir, edit, planned):
    (demo_dir / "edit.yaml").write_text(edit)  # deep-merged over the demo's config
    assert planned_jobs(demo_dir, *RUN_ARGS, "--configfile", DEMO_CONFIG, "edit.yaml") == planned

