"""Every `mlnb` sub-command given bad input ends cleanly (issue 8, item 15).

Each case runs `mlnb.cli.main` in this process (subprocesses only where the real
stderr matters): exit code 2, a message naming the file or option, and no
exception escaping (which would be a traceback at the command line).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from mlnb import cli, tracking
from mlnb.data.mnist import write_idx
from mlnb.dcgan.fid import FEATURES, PROTOCOL, FeatureStats


@pytest.fixture()
def paths(tmp_path):
    """Bad (and a few good) inputs, by the placeholder names the table uses."""
    text = tmp_path / "notes.txt"
    text.write_text("not data\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    idx = tmp_path / "digits.gz"
    write_idx(np.zeros((2, 28, 28), np.uint8), idx)
    labels = tmp_path / "labels.gz"
    write_idx(np.zeros(2, np.uint8), labels)
    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.zeros(2, np.uint8),
             x_test=np.zeros((1, 28, 28), np.uint8), y_test=np.zeros(1, np.uint8))
    bad_task = tmp_path / "bad_task.tar"
    with tarfile.open(bad_task, "w") as tar:
        data = json.dumps({"training": [{"image": 5, "label": "./labelsTr/la_001.nii.gz"}]}).encode()
        info = tarfile.TarInfo("Task02_Heart/dataset.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (tmp_path / "other.npz").write_bytes(b"PK\x03\x04 a zip header, then nothing")
    record = tmp_path / "record.json"
    record.write_text(json.dumps({"format": "mlnb-augment/1", "outputs": {"image": "x_aug0.nii.gz"}, "seed": 0}))
    for name, array in (("empty_faces", np.zeros((0, 16, 16, 3), np.uint8)),
                        ("float_faces", np.zeros((2, 16, 16, 3), np.float32)),
                        ("oblong_faces", np.zeros((2, 16, 8, 3), np.uint8))):
        np.save(tmp_path / f"{name}.npy", array)
    stats = tmp_path / "stats.npz"
    FeatureStats.of(np.random.default_rng(0).normal(size=(3, FEATURES))).save(stats)
    FeatureStats.of(np.random.default_rng(0).normal(size=(3, 4))).save(tmp_path / "small_stats.npz")
    np.savez(tmp_path / "text_stats.npz", mean=np.array(["a", "b"]), covariance=np.zeros((2, 2)), count=3,
             protocol=PROTOCOL)
    cnn_result = {"variant": "a", "settings": {"optimizer": "sgd", "steps": 1, "batch_size": 1, "schedule": "constant",
                                               "batch_norm": False, "dropout": 0.0},
                  "test_accuracy": 0.5, "epochs": 1.0, "train_images": 2, "test_images": 1}
    (tmp_path / "cnn_result.json").write_text(json.dumps(cnn_result))
    (tmp_path / "bad_cnn_result.json").write_text(json.dumps({**cnn_result, "settings": []}))
    (tmp_path / "bad_gates.json").write_text(json.dumps({"gate": "XOR", "settings": {}, "summary": {}, "runs": "x"}))
    (tmp_path / "nand_gates.json").write_text(json.dumps({"gate": "NAND", "settings": {}, "summary": {}, "runs": []}))
    (tmp_path / "inf.yaml").write_text("mlp:\n  learning_rate: .inf\n")
    return {"tmp": tmp_path, "text": text, "stats": stats, **{name: tmp_path / f"{name}.npy" for name in (
            "empty_faces", "float_faces", "oblong_faces")}, "dir": folder, "missing": tmp_path / "missing.bin",
            "idx": idx, "labels": labels, "npz": npz, "bad_task": bad_task, "record": record}


# (id, argv with {placeholders}, a regex the message must match[, marks])
CASES = [
    # demo-data
    ("demo-data/unknown-dataset", "demo-data --out {dir} --dataset nope", r"--dataset: invalid choice: 'nope'"),
    ("demo-data/out-is-a-file", "demo-data --out {text} --dataset mnist", r"--out .*notes\.txt: is a file"),
    ("demo-data/seed-not-int", "demo-data --out {dir} --seed x", r"--seed: invalid int value: 'x'"),
    ("demo-data/seed-negative", "demo-data --out {dir} --seed -1", r"--seed: -1 is less than the minimum of 0"),
    # fetch
    ("fetch/timeout-0", "fetch --url {text} --out {tmp}/o --timeout 0", r"--timeout\) must be > 0"),
    ("fetch/retries-negative", "fetch --url {text} --out {tmp}/o --retries -1", r"--retries\) must be >= 0"),
    ("fetch/md5-not-hex", "fetch --url {text} --out {tmp}/o --md5 nothex", r"md5 'nothex' is not 32 hexadecimal"),
    ("fetch/unknown-scheme", "fetch --url ftp://example.org/a --out {tmp}/o", r"unsupported scheme ftp://"),
    ("fetch/out-is-the-source", "fetch --url {text} --out {text}", r"--out .*notes\.txt is the input --url itself"),
    ("fetch/missing-source", "fetch --url {missing} --out {tmp}/o", r"missing\.bin: configured source file is missing"),
    ("fetch/out-is-a-folder", "fetch --url {text} --out {dir}", r"--out .*folder: is a folder"),
    ("fetch/no-url", "fetch --out {tmp}/o", r"the following arguments are required: --url"),
    # prepare-mnist
    ("prepare-mnist/not-idx", "prepare-mnist --train-images {text} --train-labels {labels} --test-images {idx} "
     "--test-labels {labels} --out {tmp}/m.npz", r"notes\.txt: bad IDX magic"),
    ("prepare-mnist/missing", "prepare-mnist --train-images {missing} --train-labels {labels} --test-images {idx} "
     "--test-labels {labels} --out {tmp}/m.npz", r"missing\.bin: cannot read IDX file"),
    ("prepare-mnist/out-is-a-folder", "prepare-mnist --train-images {idx} --train-labels {labels} --test-images {idx} "
     "--test-labels {labels} --out {dir}", r"folder: is a folder"),
    # prepare-celeba
    ("prepare-celeba/limit-negative", "prepare-celeba --images {text} --landmarks {text} --partition {text} "
     "--out {tmp}/i.csv --limit -1", r"--limit must be a positive number"),
    ("prepare-celeba/limit-not-int", "prepare-celeba --images {text} --landmarks {text} --partition {text} "
     "--out {tmp}/i.csv --limit x", r"--limit: invalid int value: 'x'"),
    ("prepare-celeba/not-a-zip", "prepare-celeba --images {text} --landmarks {text} --partition {text} "
     "--out {tmp}/i.csv", r"notes\.txt: not a readable zip"),
    ("prepare-celeba/missing-landmarks", "prepare-celeba --images {text} --landmarks {missing} "
     "--partition {text} --out {tmp}/i.csv", r"notes\.txt: not a readable zip|missing\.bin: cannot read"),
    ("prepare-celeba/out-is-an-input", "prepare-celeba --images {text} --landmarks {missing} --partition {missing} "
     "--out {text}", r"--out .*notes\.txt is the input --images itself"),
    ("prepare-mnist/out-is-an-input", "prepare-mnist --train-images {idx} --train-labels {labels} "
     "--test-images {idx} --test-labels {labels} --out {labels}", r"--out .*labels\.gz is the input --train-labels"),
    # prepare-heart
    ("prepare-heart/out-is-the-archive", "prepare-heart --archive {bad_task} --extract-to {tmp}/x --out {bad_task}",
     r"--out .*bad_task\.tar is the input --archive itself"),
    ("prepare-heart/missing-archive", "prepare-heart --archive {missing} --extract-to {tmp}/x --out {tmp}/i.csv",
     r"missing\.bin: archive not found"),
    ("prepare-heart/not-an-archive", "prepare-heart --archive {text} --extract-to {tmp}/x --out {tmp}/i.csv",
     r"notes\.txt: not a readable tar or zip"),
    ("prepare-heart/image-not-a-path", "prepare-heart --archive {bad_task} --extract-to {tmp}/x --out {tmp}/i.csv",
     r"dataset\.json: training\[0\]\.image must be a file path .*got 5"),
    ("prepare-heart/extract-to-a-file", "prepare-heart --archive {bad_task} --extract-to {text} --out {tmp}/i.csv",
     r"notes\.txt: is not a folder"),
    # log-data
    ("log-data/mnist-not-npz", "log-data --mnist {text} --celeba-index {missing} --celeba-zip {missing} "
     "--heart-index {missing} --out {tmp}/r", r"notes\.txt: cannot read the MNIST \.npz"),
    ("log-data/mnist-missing-arrays", "log-data --mnist {tmp}/other.npz --celeba-index {missing} "
     "--celeba-zip {missing} --heart-index {missing} --out {tmp}/r", r"other\.npz: cannot read the MNIST \.npz"),
    ("log-data/celeba-index-missing", "log-data --mnist {npz} --celeba-index {missing} --celeba-zip {missing} "
     "--heart-index {missing} --out {tmp}/r", r"missing\.bin: cannot read the CelebA index"),
    ("log-data/celeba-index-not-an-index", "log-data --mnist {npz} --celeba-index {text} --celeba-zip {text} "
     "--heart-index {missing} --out {tmp}/r", r"notes\.txt: .*CelebA index"),
    ("prepare-mnist/out-under-a-file", "prepare-mnist --train-images {idx} --train-labels {labels} "
     "--test-images {idx} --test-labels {labels} --out {text}/m.npz", r"notes\.txt/m\.npz: cannot create its folder"),
    ("log-data/stage-config-not-json", "log-data --mnist {npz} --celeba-index {text} --celeba-zip {text} "
     "--heart-index {missing} --out {tmp}/r --stage-config '{{'", r"--stage-config: invalid loads value"),
    # init-tracking
    ("init-tracking/no-out", "init-tracking", r"the following arguments are required: --out"),
    ("init-tracking/unknown-scheme", "init-tracking --tracking-uri nope://x --out {tmp}/e.json",
     r"MLflow tracking URI nope://x: unsupported scheme 'nope'"),
    ("init-tracking/bad-timeout", "init-tracking --timeout -1 --out {tmp}/e.json", r"--timeout -1: must be more"),
    # align
    ("align/missing-input", "align {missing} --out {tmp}/a", r"missing\.bin"),
    ("align/size-0", "align {dir} --out {tmp}/a --size 0", r"--size|size"),
    ("align/shards-0", "align {dir} --out {tmp}/a --shards 0", r"--shards|shards"),
    ("align/bad-landmarks", "align {dir} --out {tmp}/a --landmarks nose", r"--landmarks: invalid choice"),
    # gather-faces
    ("gather-faces/missing-shard", "gather-faces {missing} --out {tmp}/g", r"missing\.bin"),
    ("gather-faces/shard-not-a-shard", "gather-faces {dir} --out {tmp}/g", r"folder"),
    # report-faces
    ("report-faces/nothing-gathered", "report-faces {dir}", r"summary \S*folder/summary\.json: cannot read"),
    ("report-faces/preview-0", "report-faces {dir} --preview 0", r"preview.*0"),
    # augment
    ("augment/missing-image", "augment {missing} --seg {missing} --out {tmp}/aug", r"missing\.bin"),
    ("augment/image-not-an-image", "augment {text} --seg {text} --out {tmp}/aug", r"notes\.txt"),
    ("augment/copies-negative", "augment {text} --seg {text} --out {tmp}/aug --copies -1", r"--copies|copies"),
    ("augment/replay-not-json", "augment --replay {text}", r"notes\.txt"),
    ("augment/replay-without-inputs", "augment --replay {record}", r"record\.json.*inputs"),
    ("augment/order-out-of-range", "augment {text} --seg {text} --out {tmp}/aug --order 9",
     r"augment\.order: 9 is greater than the maximum of 5"),
    ("augment/seed-negative", "augment {text} --seg {text} --out {tmp}/aug --seed -1",
     r"--seed: -1 is less than the minimum of 0"),
    # gather-augment
    ("gather-augment/missing-record", "gather-augment {missing} --manifest {tmp}/m.csv", r"missing\.bin"),
    ("gather-augment/record-not-json", "gather-augment {text} --manifest {tmp}/m.csv", r"notes\.txt"),
    ("gather-augment/record-without-inputs", "gather-augment {record} --manifest {tmp}/m.csv", r"record\.json"),
    # train-cnn
    ("train-cnn/unknown-variant", "train-cnn --data {npz} --variant nope --out {tmp}/c",
     r"cnn\.variants: no variant 'nope' \(configured: none\)"),
    ("train-cnn/data-not-npz", "train-cnn --data {text} --variant q --new-variant --steps 1 --out {tmp}/c",
     r"notes\.txt: cannot read the MNIST \.npz"),
    ("train-cnn/missing-data", "train-cnn --data {missing} --variant q --new-variant --steps 1 --out {tmp}/c",
     r"missing\.bin: cannot read the MNIST \.npz"),
    ("train-cnn/data-without-arrays", "train-cnn --data {tmp}/other.npz --variant q --new-variant --steps 1 "
     "--out {tmp}/c",
     r"other\.npz: cannot read the MNIST \.npz"),
    ("train-cnn/batch-larger-than-data", "train-cnn --data {npz} --variant q --new-variant --steps 1 --batch-size 5 "
     "--device cpu --out {tmp}/c", r"batch size 5 must be between 1 and the dataset's 2 items"),
    ("train-cnn/steps-0", "train-cnn --data {npz} --variant q --new-variant --steps 0 --out {tmp}/c",
     r"cnn\.variants\.q\.steps: 0 is less than the minimum of 1"),
    ("train-cnn/bad-device", "train-cnn --data {npz} --variant q --new-variant --steps 1 --device tpu --out {tmp}/c",
     r"train\.device: 'tpu' does not match"),
    ("train-cnn/variant-not-in-the-settings", "train-cnn --data {npz} --settings '{{\"variants\": {{\"a\": "
     "{{\"steps\": 1}}}}}}' --variant b --steps 5 --out {tmp}/c",
     r"cnn\.variants: no variant 'b' \(configured: a\); --new-variant defines it from the flags"),
    ("train-cnn/seed-negative", "train-cnn --data {npz} --variant q --new-variant --steps 1 --seed -1 --out {tmp}/c",
     r"--seed: -1 is less than the minimum of 0"),
    ("train-cnn/learning-rate-nan", "train-cnn --data {npz} --variant q --new-variant --steps 1 --learning-rate nan "
     "--out {tmp}/c", r"command line: cnn\.variants\.q\.learning_rate: nan is not a finite number"),
    ("train-cnn/learning-rate-nan-in-settings", "train-cnn --data {npz} --variant q --new-variant --steps 1 "
     "--settings '{{\"variants\": {{\"q\": {{\"steps\": 1, \"learning_rate\": NaN}}}}}}' --out {tmp}/c",
     r"--settings: cnn\.variants\.q\.learning_rate: nan is not a finite number"),
    ("train-cnn/bad-optimizer", "train-cnn --data {npz} --variant q --new-variant --steps 1 --optimizer rmsprop "
     "--out {tmp}/c",
     r"--optimizer: invalid choice: 'rmsprop'"),
    # report-ladder
    ("report-ladder/missing-result", "report-ladder {missing} --out {tmp}/l.md", r"missing\.bin: cannot read"),
    ("report-ladder/not-a-result", "report-ladder {record} --out {tmp}/l.md",
     r"record\.json: not a train-cnn result \(missing epochs"),
    ("report-ladder/blog-not-a-mapping", "report-ladder {record} --blog '[1]' --out {tmp}/l.md",
     r"--blog: cnn\.blog_accuracy: \[1\] is not of type 'object'"),
    ("report-ladder/blog-nan", "report-ladder {tmp}/cnn_result.json --blog '{{\"a\": NaN}}' --out {tmp}/l.md",
     r"--blog: cnn\.blog_accuracy\.a: nan is not a finite number"),
    ("report-ladder/wrong-typed-result", "report-ladder {tmp}/bad_cnn_result.json --out {tmp}/l.md",
     r"bad_cnn_result\.json: not a train-cnn result \(settings: \[\] is not of type 'object'\)"),
    ("report-ladder/timing-not-json", "report-ladder {tmp}/cnn_result.json --timing {text} --out {tmp}/l.md",
     r"notes\.txt: the train-cnn timing file is not JSON"),
    ("report-ladder/timing-without-variant", "report-ladder {tmp}/cnn_result.json --timing {record} --out {tmp}/l.md",
     r"record\.json: not a train-cnn timing file \(missing variant\)"),
    # train-gates
    ("train-gates/layers-not-a-gate", "train-gates --gate XOR --seed 1 --out {tmp}/g --layers 3 2 1",
     r"gates\.layers \[3, 2, 1\]: a gate has 2 inputs and 1 output"),
    ("train-gates/too-few-transfers", "train-gates --gate XOR --seed 1 --out {tmp}/g --transfers sigmoid",
     r"need 2 transfer function\(s\), one per layer after the input, got 1"),
    ("train-gates/negative-rate", "train-gates --gate XOR --seed 1 --out {tmp}/g --learning-rate -1",
     r"gates\.learning_rate: -1\.0 is less than or equal to the minimum of 0"),
    ("train-gates/learning-rate-nan", "train-gates --gate XOR --seed 1 --out {tmp}/g --learning-rate nan",
     r"command line: gates\.learning_rate: nan is not a finite number"),
    ("train-gates/seed-negative", "train-gates --gate XOR --seed -1 --out {tmp}/g",
     r"--seed: -1 is less than the minimum of 0"),
    ("train-gates/unknown-gate", "train-gates --gate NAND --seed 1 --out {tmp}/g", r"--gate: invalid choice: 'NAND'"),
    # report-gates
    ("report-gates/missing-result", "report-gates {missing} --out {tmp}/r.md", r"missing\.bin: cannot read"),
    ("report-gates/result-not-json", "report-gates {text} --out {tmp}/r.md",
     r"notes\.txt: the train-gates result is not JSON"),
    ("report-gates/wrong-typed-result", "report-gates {tmp}/bad_gates.json --out {tmp}/r.md",
     r"bad_gates\.json: not a train-gates result \(runs: 'x' is not of type 'array'\)"),
    ("report-gates/unknown-gate", "report-gates {tmp}/nand_gates.json --out {tmp}/r.md",
     r"nand_gates\.json: not a train-gates result \(gate: 'NAND' is not one of"),
    # train-mlp
    ("train-mlp/missing-data", "train-mlp --data {missing} --seed 1 --out {tmp}/m",
     r"missing\.bin: cannot read the MNIST \.npz"),
    ("train-mlp/data-not-npz", "train-mlp --data {text} --seed 1 --out {tmp}/m",
     r"notes\.txt: cannot read the MNIST \.npz"),
    ("train-mlp/input-width", "train-mlp --data {npz} --seed 1 --out {tmp}/m --layers 700 10",
     r"mnist\.npz: x_train holds uint8 images of shape \(28, 28\) \(784 pixels\); the network's input layer takes 700"),
    ("train-mlp/batch-0", "train-mlp --data {npz} --seed 1 --out {tmp}/m --batch-size 0",
     r"mlp\.batch_size: 0 is less than the minimum of 1"),
    ("train-mlp/seed-negative", "train-mlp --data {npz} --seed -1 --out {tmp}/m",
     r"--seed: -1 is less than the minimum of 0"),
    ("train-mlp/learning-rate-inf", "train-mlp --data {npz} --out {tmp}/m --learning-rate inf",
     r"command line: mlp\.learning_rate: inf is not a finite number"),
    ("train-mlp/learning-rate-inf-in-yaml", "train-mlp --data {npz} --out {tmp}/m --settings {tmp}/inf.yaml",
     r"inf\.yaml: mlp\.learning_rate: inf is not a finite number"),
    # fid-stats
    ("fid-stats/missing-images", "fid-stats {missing} --out {tmp}/s.npz --device cpu", r"missing\.bin"),
    ("fid-stats/not-images", "fid-stats {text} --out {tmp}/s.npz --device cpu", r"notes\.txt"),
    ("fid-stats/bad-device", "fid-stats {npz} --out {tmp}/s.npz --device tpu", r"--device|tpu"),
    ("fid-stats/seed-negative", "fid-stats {npz} --out {tmp}/s.npz --seed -1", r"--seed: -1 is less than the minimum"),
    # train-dcgan
    ("train-dcgan/missing-images", "train-dcgan --data {missing} --dataset celeba --real-stats {missing} "
     "--out {tmp}/o --device cpu", r"missing\.bin: no such file"),
    ("train-dcgan/not-images", "train-dcgan --data {text} --dataset celeba --real-stats {missing} --out {tmp}/o "
     "--device cpu", r"notes\.txt: not a numpy array file"),
    ("train-dcgan/empty-faces", "train-dcgan --data {empty_faces} --dataset celeba --real-stats {missing} "
     "--out {tmp}/o --device cpu", r"empty_faces\.npy: holds no images"),
    ("train-dcgan/float-faces", "train-dcgan --data {float_faces} --dataset celeba --real-stats {missing} "
     "--out {tmp}/o --device cpu", r"float_faces\.npy: images must be uint8, got float32"),
    ("train-dcgan/not-square", "train-dcgan --data {oblong_faces} --dataset celeba --real-stats {missing} "
     "--out {tmp}/o --device cpu", r"oblong_faces\.npy: images must be square, got 16 x 8"),
    ("train-dcgan/missing-stats", "train-dcgan --data {npz} --dataset mnist --real-stats {missing} --out {tmp}/o "
     "--device cpu", r"missing\.bin: not an FID statistics file"),
    ("train-dcgan/batch-over-images", "train-dcgan --data {npz} --dataset mnist --real-stats {stats} --out {tmp}/o "
     "--device cpu --batch-size 64", r"batch size 64 must be between 1 and the dataset's 2"),
    ("train-dcgan/corrupt-stats", "train-dcgan --data {npz} --dataset mnist --real-stats {tmp}/other.npz "
     "--out {tmp}/o --device cpu", r"other\.npz: not an FID statistics file \(BadZipFile"),
    ("train-dcgan/stats-of-other-features", "train-dcgan --data {npz} --dataset mnist --real-stats "
     "{tmp}/small_stats.npz --out {tmp}/o --device cpu", r"statistics of 4-d features, not the Inception's 2048"),
    ("train-dcgan/stats-of-text", "train-dcgan --data {npz} --dataset mnist --real-stats {tmp}/text_stats.npz "
     "--out {tmp}/o --device cpu", r"text_stats\.npz: not an FID statistics file \(mean must be a vector of floats"),
    ("train-dcgan/seed-negative", "train-dcgan --data {npz} --dataset mnist --real-stats {stats} --out {tmp}/o "
     "--seed -1", r"--seed: -1 is less than the minimum of 0"),
    ("train-dcgan/learning-rate-nan", "train-dcgan --data {npz} --dataset mnist --real-stats {stats} --out {tmp}/o "
     "--learning-rate nan", r"command line: dcgan\.learning_rate: nan is not a finite number"),
    # prepare-segment, train-segment, report-segment
    ("prepare-segment/missing-index", "prepare-segment --index {missing} --out {tmp}/p", r"missing\.bin: cannot read"),
    ("prepare-segment/manifest-without-like", "prepare-segment --manifest {text} --out {tmp}/p",
     r"prepare-segment: --manifest needs --like"),
    ("train-segment/missing-pack", "train-segment --data {missing} --folds-file {missing} --arm none --fold 0 "
     "--out {tmp}/s --device cpu", r"missing\.bin: not a readable segmentation pack"),
    ("train-segment/unknown-arm", "train-segment --data {missing} --folds-file {missing} --arm spin --fold 0 "
     "--out {tmp}/s --device cpu", r"segment arm 'spin': expected one of none, offline, onthefly"),
    ("report-segment/not-metrics", "report-segment {text} --out {tmp}/r.md --figures {tmp}/f",
     r"notes\.txt: not a readable segmentation metrics file"),
    # ui
    ("ui/port-0", "ui --port 0", r"--port 0: must be between 1 and 65535"),
    ("ui/port-not-int", "ui --port x", r"--port: invalid int value: 'x'"),
    ("ui/no-workers", "ui --workers 0", r"--workers 0: must be at least 1"),
]


def _argv(template: str, paths: dict) -> list[str]:
    import shlex

    return shlex.split(template.format(**{name: str(path) for name, path in paths.items()}))


def run_in_process(argv: list[str], capsys, caplog) -> tuple[int, str, list[logging.LogRecord]]:
    with caplog.at_level(logging.INFO):
        try:
            code = cli.main(argv)
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code
    captured = capsys.readouterr()
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    return code, captured.out + captured.err + caplog.text, errors


@pytest.mark.parametrize(("argv", "message"), [
    pytest.param(argv, message, id=case_id, marks=marks) for case_id, argv, message, *marks in CASES
])
def test_bad_call_is_one_clear_error(paths, capsys, caplog, argv, message):
    code, output, errors = run_in_process(_argv(argv, paths), capsys, caplog)
    assert code == 2, output[-3000:]
    assert re.search(message, output), output[-3000:]
    assert "Traceback" not in output
    assert len(errors) <= 1 and all("\n" not in record.getMessage() for record in errors), output[-3000:]


def test_every_command_has_a_bad_call_in_the_table():
    assert {case[0].split("/")[0] for case in CASES} == set(cli.COMMANDS)


def test_at_the_command_line_the_error_is_one_line_without_a_traceback(paths):
    argv = _argv("log-data --mnist {text} --celeba-index {missing} --celeba-zip {missing} "
                 "--heart-index {missing} --out {tmp}/r", paths)
    result = subprocess.run([sys.executable, "-m", "mlnb.cli", *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(lines) == 1 and "notes.txt: cannot read the MNIST .npz" in lines[0], result.stderr


@pytest.fixture()
def small_file_system(tmp_path):
    """``mount(*options, size="64k")``: a fresh tmpfs under ``tmp_path`` (mounting needs root: skipped otherwise),
    unmounted after the test."""
    mounted = []

    def mount(*options: str, size: str = "64k"):
        folder = tmp_path / f"fs{len(mounted)}"
        folder.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join((f"size={size}", *options)), "tmpfs",
                                 str(folder)], capture_output=True, text=True)
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)  # an MLflow engine may hold its store open


def fill(folder) -> None:
    """Write into ``folder`` until its file system is full."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, bytes(4096)):
            pass
    except OSError as error:
        assert error.errno == errno.ENOSPC
    finally:
        os.close(fd)


@pytest.mark.parametrize(("read_only", "message"), [
    pytest.param(True, r"XOR_curves\.npz: cannot write in its folder \(Read-only file system\)", id="read-only-out"),
    pytest.param(False, r"XOR_curves\.npz: cannot write it \(No space left on device\)", id="full-disk"),
])
def test_an_out_folder_that_cannot_be_written_is_one_clear_error(small_file_system, capsys, caplog, read_only,
                                                                    message):
    folder = small_file_system("ro") if read_only else small_file_system()
    if not read_only:
        fill(folder)
    argv = ["train-gates", "--gate", "XOR", "--seed", "1", "--max-iterations", "10", "--seeds", "1",
            "--out", str(folder)]
    code, output, errors = run_in_process(argv, capsys, caplog)
    assert code == 2 and len(errors) == 1 and re.search(message, errors[0].getMessage()), output[-3000:]
    assert "Traceback" not in output and not list(folder.glob(".XOR*"))  # no temporary file left behind


def test_a_stop_while_the_command_loads_is_a_stop_not_a_traceback(monkeypatch, capsys, caplog):
    """SIGINT while a command imports its libraries (torch takes seconds) ends it as a stop during its work does."""
    def interrupted(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.importlib, "import_module", interrupted)
    try:
        code, output, errors = run_in_process(["train-cnn", "--help"], capsys, caplog)
    except KeyboardInterrupt:
        pytest.fail("the interrupt escaped mlnb.cli.main: a traceback at the command line")
    assert code == 130 and [record.getMessage() for record in errors] == ["mlnb train-cnn: stopped by SIGINT"]


# A faulty MLflow store (issue 17): one line naming the store file, and the store left as it was (no run made).
TRAIN_GATES = "train-gates --gate XOR --seed 1 --max-iterations 10 --seeds 1 --experiment tests"


def _schema_revision(db, revision: str) -> None:
    with contextlib.closing(sqlite3.connect(db)) as store, store:
        store.execute("update alembic_version set version_num = ?", (revision,))


def _store_in(folder: Path, template: Path) -> Path:
    """The ``template`` store copied into ``folder``, its artifacts beside it (nothing left for a lookup to
    write), and opened by no MLflow client yet (one would hold it open, and check its schema only once)."""
    db = folder / "mlflow.db"
    shutil.copyfile(template, db)
    with contextlib.closing(sqlite3.connect(db)) as store:
        experiment, location = store.execute("select experiment_id, artifact_location from experiments "
                                             "where name = 'tests'").fetchone()
    tracking.relocate_artifacts(db, experiment, location, tracking.artifacts_beside(db))
    return db


@pytest.fixture()
def faulty_store(tmp_path, mlflow_template_db, small_file_system, monkeypatch):
    """``make(fault)``: the path of a store of experiment ``tests`` with ``fault``; a lock is held (and
    retry_locked's wait shortened to 1 s) until the test ends."""
    held = []

    def make(fault: str):
        if fault == "not-a-database":
            db = tmp_path / "mlflow.db"
            db.write_text("an SQLite store was expected here\n" * 100)
        elif fault in ("older-schema", "newer-schema"):
            db = _store_in(tmp_path, mlflow_template_db)
            oldest = tracking.mlflow_migrations().get_bases()[0]
            _schema_revision(db, oldest if fault == "older-schema" else "0123456789ab")
        elif fault == "locked":
            db = _store_in(tmp_path, mlflow_template_db)
            monkeypatch.setattr(tracking, "LOCKED_WAIT_SECONDS", 1.0)
            holder = sqlite3.connect(db, isolation_level=None)
            holder.execute("begin exclusive")
            held.append(holder)
        elif fault == "read-only-file":
            folder = tmp_path / "store"
            folder.mkdir()
            db = _store_in(folder, mlflow_template_db)
            db.chmod(0o444)
            folder.chmod(0o555)
            held.append(folder)
            if os.access(db, os.W_OK):
                pytest.skip("this user (root) writes a file whatever its mode: read-only-file-system covers it")
        elif fault == "read-only-file-system":
            folder = small_file_system(size="4m")
            db = _store_in(folder, mlflow_template_db)
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        else:
            assert fault == "full-disk"
            folder = small_file_system(size="4m")
            db = _store_in(folder, mlflow_template_db)
            fill(folder)
        return db

    yield make
    for resource in held:
        if isinstance(resource, sqlite3.Connection):
            resource.close()
        else:
            resource.chmod(0o755)


STORE_FAULTS = [
    ("not-a-database", r"not an SQLite database \(restore it from a backup, or use a store that `mlnb init-tracking` "
                       r"made\)"),
    ("older-schema", r"written by another MLflow version \(schema (\w+); this MLflow, [\d.]+, expects (\w+)\): back "
                     r"it up, then upgrade it with `mlflow db upgrade sqlite:///\S+/mlflow\.db`"),
    ("newer-schema", r"written by another MLflow version \(schema 0123456789ab; this MLflow, [\d.]+, expects \w+\): "
                     r"a newer MLflow made it; log with that version"),
    ("locked", r"locked by another process for \d+\.\d s \(mlnb waits up to 1 s\)"),
    ("read-only-file", r"read-only \(make the file and its folder writable\)"),
    ("read-only-file-system", r"read-only \(make the file and its folder writable\)"),
    ("full-disk", r"its disk is full \(no space left to write the store\)"),
]


@pytest.mark.parametrize(("fault", "problem"), [pytest.param(*case, id=case[0]) for case in STORE_FAULTS])
def test_a_faulty_store_is_one_line_naming_it_and_is_left_as_it_was(faulty_store, tmp_path, capsys, caplog,
                                                                     fault, problem):
    db = faulty_store(fault)
    before = db.read_bytes()
    out = tmp_path / "out"
    argv = [*TRAIN_GATES.split(), "--out", str(out), "--tracking-uri", f"sqlite:///{db}"]
    code, output, errors = run_in_process(argv, capsys, caplog)
    assert code == 2 and len(errors) == 1, output[-3000:]
    assert re.fullmatch(f"MLflow store {re.escape(str(db))}: {problem}", errors[0].getMessage()), output[-3000:]
    assert "Traceback" not in output
    assert db.read_bytes() == before  # no run made, nothing half-written
    assert not out.exists() or not any(out.iterdir())  # stopped before training


def test_the_store_schema_versions_named_are_mlflows_own(mlflow_uri):
    """The older-schema case names a revision this MLflow can upgrade from, and the one it expects: its head."""
    migrations = tracking.mlflow_migrations()
    db = tracking.sqlite_path(mlflow_uri)
    _schema_revision(db, migrations.get_bases()[0])
    with pytest.raises(tracking.TrackingStoreError) as raised:
        tracking.mlflow_client(mlflow_uri)
    found, expected = re.search(r"schema (\w+); this MLflow, [\d.]+, expects (\w+)", str(raised.value)).groups()
    assert (found, expected) == (migrations.get_bases()[0], migrations.get_current_head())


def test_init_tracking_on_a_store_that_is_not_a_database_is_one_line(faulty_store, tmp_path, capsys, caplog):
    db = faulty_store("not-a-database")
    argv = ["init-tracking", "--tracking-uri", f"sqlite:///{db}", "--experiment", "tests", "--out",
            str(tmp_path / "e.json")]
    code, output, errors = run_in_process(argv, capsys, caplog)
    assert code == 2 and [record.getMessage() for record in errors] == [
        f"MLflow store {db}: not an SQLite database (restore it from a backup, or use a store that "
        "`mlnb init-tracking` made)"], output[-3000:]
    assert not (tmp_path / "e.json").exists()


def test_a_disk_that_fills_while_a_run_logs_is_one_line_naming_where(small_file_system, mlflow_template_db,
                                                                      tmp_path, capsys, caplog, monkeypatch):
    """The store's disk (its artifacts' too) fills after the run began: the command ends with one line naming the
    artifact folder it could not write, the metrics it could not flush are one warning line, and the run is
    left as the store last recorded it (RUNNING: a full disk takes no status either)."""
    from mlnb.scratch import gates

    folder = small_file_system(size="4m")
    db = _store_in(folder, mlflow_template_db)
    written = gates.write_outputs

    def fill_then_write(*args):
        fill(folder)
        return written(*args)

    monkeypatch.setattr(gates, "write_outputs", fill_then_write)
    argv = [*TRAIN_GATES.split(), "--out", str(tmp_path / "out"), "--tracking-uri", f"sqlite:///{db}"]
    code, output, errors = run_in_process(argv, capsys, caplog)
    assert code == 2 and len(errors) == 1, output[-3000:]
    assert "Traceback" not in output
    named = re.fullmatch(rf"MLflow artifacts of run (\w+) at {re.escape(folder.as_uri())}/artifacts/\1/artifacts: "
                         r"cannot write them \(No space left on device\)", errors[0].getMessage())
    assert named, output[-3000:]
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING
                and record.name == "mlnb.tracking"]
    assert warnings == [f"could not write the last metrics of MLflow run {named.group(1)}: MLflow store {db}: its "
                        "disk is full (no space left to write the store)"]  # and nothing more was tried
