"""The Snakefile parses with Snakemake alone: what workflow/rules/common.smk restates of the package agrees with it,
and a virtual environment holding only the pinned Snakemake lints and plans the workflow."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlnb import job_runs, tracking
from mlnb.augment.memory import Header, required_bytes
from mlnb.augment.policy import RandomPolicy
from mlnb.augment.settings import AugmentSettings
from mlnb.data import celeba_format
from mlnb.data.source import parse_source
from mlnb.errors import ConfigError
from mlnb.segment import preprocess, report
from mlnb.segment.settings import ARMS, arm_policy
from mlnb.settings import config_schema, operational_keys
from mlnb.training.launch import launcher
from tests.workflow.test_workflow import DEMO_CONFIG, REPO, copy_workflow, snakemake

SOURCES = ["https://example.org/a.tar", "HTTPS://example.org/a.tar", "http:///a.tar", "gdrive://0B7EVK8r0v71pZjFTYXZ",
           "gdrive://short", "file:///data/Task02%20Heart.tar", "file://localhost/data/a.tar", "file://host/a.tar",
           "ftp://example.org/a.tar", "s3://bucket/a.tar", "results/demo/heart/Task02_Heart.tar", "/data/a.tar"]
SHAPES = [(320, 320, 130), (88, 104, 40), (256, 300, 7)]
ITEMSIZES = [1, 2, 4, 8]
DIMS = [None, [224, 224, 112], [128, 128]]
MODES = ["fused", "sequential"]

# Includes the workflow, then evaluates its parse-time helpers on the cases in probe.json.
PROBE_SNAKEFILE = '''include: "Snakefile"


def probe_source(text):
    try:
        return ["local", local_source(text, "origin")]
    except WorkflowError as error:
        return ["error", str(error)]


with open("probe.json") as handle:
    cases = json.load(handle)
with open("probed.json", "w") as handle:
    json.dump({
        "sources": [probe_source(text) for text in cases["sources"]],
        "peaks": [augment_peak_bytes(*case) for case in cases["peaks"]],
        "launchers": [train_launcher(processes) for processes in cases["processes"]],
        "celeba_files": RAW_FILES["celeba"],
        "env_names": [TRACKING_URI_ENV, EXPERIMENT_ENV, JOB_ENV, TRACKING_TIMEOUT_ENV],
        "request_settings": [mlflow_request_settings(timeout) for timeout in (0.5, 2, 7, 60)],
        "operational": {section: sorted(keys) for section, keys in OPERATIONAL_KEYS.items()},
        "segment": {"pack": SEGMENT_PACK, "figures": SEGMENT_FIGURES, "policy_keys": SEGMENT_POLICY_KEYS,
                    "unaugmented_arms": SEGMENT_UNAUGMENTED_ARMS},
    }, handle)
'''


@pytest.fixture(scope="module")
def probed(tmp_path_factory) -> dict:
    folder = copy_workflow(tmp_path_factory.mktemp("probe"))
    peaks = [[list(shape), image, seg, dims, mode]
             for shape, image, seg, dims, mode in itertools.product(SHAPES, ITEMSIZES, ITEMSIZES, DIMS, MODES)]
    (folder / "probe.json").write_text(json.dumps({"sources": SOURCES, "peaks": peaks, "processes": [1, 2, 4]}))
    (folder / "probe.smk").write_text(PROBE_SNAKEFILE)
    result = snakemake("-s", "probe.smk", "--list-rules", cwd=folder)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {**json.loads((folder / "probed.json").read_text()), "peak_cases": peaks}


def test_sources_are_classified_as_the_fetch_parser_does(probed):
    for text, (kind, value) in zip(SOURCES, probed["sources"], strict=True):
        try:
            source = parse_source(text, origin="origin")
        except ConfigError as error:
            assert (kind, value) == ("error", str(error)), text
        else:
            assert (kind, value) == ("local", None if source.is_remote else source.target), text


def test_the_augment_memory_request_is_the_package_estimate(probed):
    for (shape, image, seg, dims, mode), peak in zip(probed["peak_cases"], probed["peaks"], strict=True):
        expected = required_bytes(Header(tuple(shape), image), Header(tuple(shape), seg),
                                  None if dims is None else tuple(dims), mode)
        assert peak == expected, (shape, image, seg, dims, mode)


def test_facts_restated_from_the_package_agree(probed):
    assert probed["launchers"] == [launcher(processes) for processes in (1, 2, 4)]
    assert probed["celeba_files"] == celeba_format.FILES
    assert probed["request_settings"] == [tracking.request_settings(timeout) for timeout in (0.5, 2, 7, 60)]
    assert probed["env_names"] == [job_runs.TRACKING_URI_ENV, job_runs.EXPERIMENT_ENV, job_runs.JOB_ENV,
                                    job_runs.TRACKING_TIMEOUT_ENV]
    assert probed["operational"] == {section: sorted(operational_keys(section))
                                     for section in config_schema()["properties"]}
    assert probed["operational"]["train"] == ["checkpoint_every", "gpu", "processes", "threads"]


def test_segmentation_facts_restated_from_the_package_agree(probed):
    segment = probed["segment"]
    assert segment["pack"] == [preprocess.IMAGES, preprocess.LABELS, preprocess.INDEX]
    assert segment["figures"] == list(report.REPORT_FIGURES)
    # the augment keys an arm that augments on the fly uses: its random policy's draws (not the saved copies'
    # crop and grid, dims and crop_margin) and the spline order; the arms without a policy are handed none
    copies_only = {"dims", "crop_margin"}
    assert set(segment["policy_keys"]) == {field.name for field in dataclasses.fields(RandomPolicy)} - copies_only | {
        "order"}
    policy = AugmentSettings.from_mapping({}).policy()
    assert segment["unaugmented_arms"] == [arm for arm in ARMS if arm_policy(arm, policy) is None]


@pytest.fixture(scope="session")
def snakemake_only(tmp_path_factory) -> Path:
    """A virtual environment holding the pinned Snakemake and what it depends on, nothing else (about a minute)."""
    venv = tmp_path_factory.mktemp("snakemake-only") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pin = next(line for line in (REPO / "envs" / "constraints.txt").read_text().splitlines()
               if line.startswith("snakemake=="))
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", pin],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return venv


@pytest.mark.slow
@pytest.mark.parametrize("args", [("--lint",), ("-n",), ("-n", "--configfile", DEMO_CONFIG)],
                         ids=["lint", "dry-run", "dry-run-demo"])
def test_snakemake_alone_lints_and_plans_the_workflow(snakemake_only, tmp_path, args):
    """No mlnb, MLflow or torch there (without the default profile, whose logger plugin lives with mlnb)."""
    folder = copy_workflow(tmp_path)
    python = snakemake_only / "bin" / "python"
    assert subprocess.run([str(python), "-c", "import mlnb"], capture_output=True).returncode != 0
    env = {"PATH": f"{snakemake_only / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": os.environ["HOME"]}
    result = subprocess.run([str(python), "-m", "snakemake", *args], cwd=folder, env=env, capture_output=True,
                            text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    if args == ("--lint",):
        assert "Congratulations, your workflow is in a good condition!" in output, output[-3000:]
    else:
        assert "init_tracking" in output and "prepare_heart" in output, output[-3000:]
