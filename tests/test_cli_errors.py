"""Every `mlnb` sub-command given bad input ends cleanly (issue 8, item 15).

Each case runs `mlnb.cli.main` in this process (subprocesses only where the real
stderr matters): exit code 2, a message naming the file or option, and no
exception escaping (which would be a traceback at the command line).
"""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from mlnb import cli
from mlnb.data.mnist import write_idx
from mlnb.dcgan.fid import FeatureStats


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
    FeatureStats.of(np.random.default_rng(0).normal(size=(3, 4))).save(stats)
    return {"tmp": tmp_path, "text": text, "stats": stats, **{name: tmp_path / f"{name}.npy" for name in (
            "empty_faces", "float_faces", "oblong_faces")}, "dir": folder, "missing": tmp_path / "missing.bin", "idx": idx,
            "labels": labels, "npz": npz, "bad_task": bad_task, "record": record}


# (id, argv with {placeholders}, a regex the message must match[, marks])
CASES = [
    # demo-data
    ("demo-data/unknown-dataset", "demo-data --out {dir} --dataset nope", r"--dataset: invalid choice: 'nope'"),
    ("demo-data/out-is-a-file", "demo-data --out {text} --dataset mnist", r"--out .*notes\.txt: is a file"),
    ("demo-data/seed-not-int", "demo-data --out {dir} --seed x", r"--seed: invalid int value: 'x'"),
    # fetch
    ("fetch/timeout-0", "fetch --url {text} --out {tmp}/o --timeout 0", r"--timeout\) must be > 0"),
    ("fetch/retries-negative", "fetch --url {text} --out {tmp}/o --retries -1", r"--retries\) must be >= 0"),
    ("fetch/md5-not-hex", "fetch --url {text} --out {tmp}/o --md5 nothex", r"md5 'nothex' is not 32 hexadecimal"),
    ("fetch/unknown-scheme", "fetch --url ftp://example.org/a --out {tmp}/o", r"unsupported scheme ftp://"),
    ("fetch/out-is-the-source", "fetch --url {text} --out {text}", r"--out .*notes\.txt is the source"),
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
    # gather-augment
    ("gather-augment/missing-record", "gather-augment {missing} --manifest {tmp}/m.csv", r"missing\.bin"),
    ("gather-augment/record-not-json", "gather-augment {text} --manifest {tmp}/m.csv", r"notes\.txt"),
    ("gather-augment/record-without-inputs", "gather-augment {record} --manifest {tmp}/m.csv", r"record\.json"),
    # train-cnn
    ("train-cnn/unknown-variant", "train-cnn --data {npz} --variant nope --out {tmp}/c",
     r"cnn\.variants: no variant 'nope' \(configured: none\)"),
    ("train-cnn/data-not-npz", "train-cnn --data {text} --variant q --steps 1 --out {tmp}/c",
     r"notes\.txt: cannot read the MNIST \.npz"),
    ("train-cnn/missing-data", "train-cnn --data {missing} --variant q --steps 1 --out {tmp}/c",
     r"missing\.bin: cannot read the MNIST \.npz"),
    ("train-cnn/data-without-arrays", "train-cnn --data {tmp}/other.npz --variant q --steps 1 --out {tmp}/c",
     r"other\.npz: cannot read the MNIST \.npz"),
    ("train-cnn/batch-larger-than-data", "train-cnn --data {npz} --variant q --steps 1 --batch-size 5 "
     "--device cpu --out {tmp}/c", r"batch size 5 must be between 1 and the dataset's 2 items"),
    ("train-cnn/steps-0", "train-cnn --data {npz} --variant q --steps 0 --out {tmp}/c",
     r"cnn\.variants\.q\.steps: 0 is less than the minimum of 1"),
    ("train-cnn/bad-device", "train-cnn --data {npz} --variant q --steps 1 --device tpu --out {tmp}/c",
     r"train\.device: 'tpu' does not match"),
    ("train-cnn/bad-optimizer", "train-cnn --data {npz} --variant q --steps 1 --optimizer rmsprop --out {tmp}/c",
     r"--optimizer: invalid choice: 'rmsprop'"),
    # report-ladder
    ("report-ladder/missing-result", "report-ladder {missing} --out {tmp}/l.md", r"missing\.bin: cannot read"),
    ("report-ladder/not-a-result", "report-ladder {record} --out {tmp}/l.md",
     r"record\.json: not a train-cnn result \(missing epochs"),
    ("report-ladder/blog-not-a-mapping", "report-ladder {record} --blog '[1]' --out {tmp}/l.md",
     r"--blog: expected a JSON mapping"),
    # train-gates
    ("train-gates/layers-not-a-gate", "train-gates --gate XOR --seed 1 --out {tmp}/g --layers 3 2 1",
     r"gates\.layers \[3, 2, 1\]: a gate has 2 inputs and 1 output"),
    ("train-gates/too-few-transfers", "train-gates --gate XOR --seed 1 --out {tmp}/g --transfers sigmoid",
     r"need 2 transfer function\(s\), one per layer after the input, got 1"),
    ("train-gates/negative-rate", "train-gates --gate XOR --seed 1 --out {tmp}/g --learning-rate -1",
     r"gates\.learning_rate: -1\.0 is less than or equal to the minimum of 0"),
    ("train-gates/unknown-gate", "train-gates --gate NAND --seed 1 --out {tmp}/g", r"--gate: invalid choice: 'NAND'"),
    # report-gates
    ("report-gates/missing-result", "report-gates {missing} --out {tmp}/r.md", r"missing\.bin: cannot read"),
    ("report-gates/result-not-json", "report-gates {text} --out {tmp}/r.md", r"notes\.txt: not JSON"),
    # train-mlp
    ("train-mlp/missing-data", "train-mlp --data {missing} --seed 1 --out {tmp}/m",
     r"missing\.bin: cannot read the MNIST \.npz"),
    ("train-mlp/data-not-npz", "train-mlp --data {text} --seed 1 --out {tmp}/m",
     r"notes\.txt: cannot read the MNIST \.npz"),
    ("train-mlp/input-width", "train-mlp --data {npz} --seed 1 --out {tmp}/m --layers 700 10",
     r"mnist\.npz: x_train holds uint8 images of shape \(28, 28\) \(784 pixels\); the network's input layer takes 700"),
    ("train-mlp/batch-0", "train-mlp --data {npz} --seed 1 --out {tmp}/m --batch-size 0",
     r"mlp\.batch_size: 0 is less than the minimum of 1"),
    # fid-stats
    ("fid-stats/missing-images", "fid-stats {missing} --out {tmp}/s.npz --device cpu", r"missing\.bin"),
    ("fid-stats/not-images", "fid-stats {text} --out {tmp}/s.npz --device cpu", r"notes\.txt"),
    ("fid-stats/bad-device", "fid-stats {npz} --out {tmp}/s.npz --device tpu", r"--device|tpu"),
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
