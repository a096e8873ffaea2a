"""No `mlnb` sub-command overwrites its inputs (issue 17, item 2).

One row per way an output can name an input: an ``--out`` file, ``--timing``, ``--manifest``, a file a
command writes into its ``--out`` folder, its checkpoint folder, a folder it fills (``--extract-to``).
Each runs `mlnb.cli.main` in this process and must end with exit code 2 and one line naming both
options, before anything is read or written: every file under the test's folder keeps its bytes, and
no file appears.
"""

from __future__ import annotations

import re
import shlex

import numpy as np
import pytest

from mlnb import cli
from tests.test_cli_errors import run_in_process

#: commands that take no input file, or write no file, so no output of theirs can name an input
NOTHING_TO_OVERWRITE = {
    "demo-data": "reads no file: it makes the replicas from its seed",
    "ui": "writes no file of its own: it serves the store (MLflow's server writes there)",
}


@pytest.fixture()
def files(tmp_path):
    """Inputs, by the placeholder names the table uses."""
    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.zeros(2, np.uint8),
             x_test=np.zeros((1, 28, 28), np.uint8), y_test=np.zeros(1, np.uint8))
    text = tmp_path / "notes.txt"
    text.write_text("the user's only copy\n")
    shard = tmp_path / "shard"
    shard.mkdir()
    for name in ("faces.npy", "manifest.csv", "preview.png"):
        (shard / name).write_text(f"{name} of a shard\n")
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    np.savez(checkpoints / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8))
    for name in ("store.db", "summary.json", "mnist_preview.png", "la_1.png", "la_1_aug0_seg.png", "result.json",
                 "timing.json", "XOR.json", "stats.npz", "archive.tar", "index.json", "metrics.json"):
        (tmp_path / name).write_text(f"{name}: an input\n")
    (tmp_path / "extracted").mkdir()
    (tmp_path / "extracted" / "archive.tar").write_text("an archive inside the folder it is extracted to\n")
    return {"tmp": tmp_path, "npz": npz, "text": text, "shard": shard, "checkpoints": checkpoints}


# (id, argv with {placeholders}, a regex the one error line must match)
CASES = [
    ("fetch/out-is-the-source", "fetch --url {text} --out {text}", r"--out \S*notes\.txt is the input --url itself"),
    ("fetch/out-is-a-mirror", "fetch --url https://example.org/x --mirror {text} --out {tmp}/sub/../notes.txt",
     r"--out \S*notes\.txt is the input --mirror itself"),
    ("prepare-mnist/out-is-a-label-file", "prepare-mnist --train-images {npz} --train-labels {text} "
     "--test-images {npz} --test-labels {npz} --out {text}", r"--out \S*notes\.txt is the input --train-labels itself"),
    ("prepare-celeba/out-is-the-zip", "prepare-celeba --images {text} --landmarks {npz} --partition {npz} "
     "--out {text}", r"--out \S*notes\.txt is the input --images itself"),
    ("prepare-heart/out-is-the-archive", "prepare-heart --archive {tmp}/archive.tar --extract-to {tmp}/x "
     "--out {tmp}/archive.tar", r"--out \S*archive\.tar is the input --archive itself"),
    ("prepare-heart/archive-in-the-extract-folder", "prepare-heart --archive {tmp}/extracted/archive.tar "
     "--extract-to {tmp}/extracted --out {tmp}/index.csv",
     r"--extract-to \S*extracted would replace the input --archive \S*extracted/archive\.tar"),
    ("log-data/summary-over-an-input", "log-data --mnist {npz} --celeba-index {text} --celeba-zip {text} "
     "--heart-index {tmp}/summary.json --out {tmp}/../{tmp.name}",
     r"--out \S* would replace the input --heart-index \S*summary\.json \(the command writes summary\.json there\)"),
    ("log-data/preview-over-an-input", "log-data --mnist {npz} --celeba-index {tmp}/mnist_preview.png "
     "--celeba-zip {text} --heart-index {text} --out {tmp}",
     r"--out \S* would replace the input --celeba-index \S*mnist_preview\.png"),
    ("init-tracking/out-is-the-store", "init-tracking --tracking-uri sqlite:///{tmp}/store.db --out {tmp}/store.db",
     r"--out \S*store\.db is the input --tracking-uri itself"),
    ("align/out-is-the-input-folder", "align {shard} --out {shard}", r"--out \S*shard is the input INPUT itself"),
    ("align/manifest-over-the-index", "align {text} --index {shard}/manifest.csv --out {shard}",
     r"--out \S*shard would replace the input --index \S*manifest\.csv \(the command writes manifest\.csv there\)"),
    ("gather-faces/out-is-a-shard", "gather-faces {shard} --out {shard}",
     r"--out \S*shard would replace the input SHARD_DIR \S*shard/faces\.npy"),
    ("report-faces/preview-over-the-settings", "report-faces {shard} --settings {shard}/preview.png",
     r"DIR \S*shard would replace the input --settings \S*preview\.png"),
    ("augment/copy-over-the-segmentation", "augment {tmp}/la_1.png --seg {tmp}/la_1_aug0_seg.png --out {tmp}",
     r"--out \S* would replace the input --seg \S*la_1_aug0_seg\.png \(the command writes la_1_aug\* there\)"),
    ("augment/out-is-the-image", "augment {tmp}/la_1.png --out {tmp}/la_1.png",
     r"--out \S*la_1\.png is the input IMAGE itself"),
    ("gather-augment/manifest-over-a-record", "gather-augment {tmp}/result.json --manifest {tmp}/result.json",
     r"--manifest \S*result\.json is the input RECORD itself"),
    ("fid-stats/out-is-the-images", "fid-stats {npz} --out {npz} --device cpu",
     r"--out \S*mnist\.npz is the input IMAGES itself"),
    ("fid-stats/out-is-the-settings", "fid-stats {npz} --settings {tmp}/stats.npz --out {tmp}/stats.npz",
     r"--out \S*stats\.npz is the input --settings itself"),
    ("train-cnn/timing-is-the-data", "train-cnn --data {npz} --variant q --new-variant --steps 1 --out {tmp}/o "
     "--timing {npz}", r"--timing \S*mnist\.npz is the input --data itself"),
    ("train-cnn/out-writes-the-data", "train-cnn --data {tmp}/result.json --variant q --new-variant --steps 1 "
     "--out {tmp}", r"--out \S* would replace the input --data \S*result\.json \(the command writes result\.json"),
    ("train-cnn/data-in-the-checkpoints", "train-cnn --data {checkpoints}/mnist.npz --variant q --new-variant "
     "--steps 1 --out {tmp}/o --checkpoint-dir {checkpoints}",
     r"--checkpoint-dir \S*checkpoints would replace the input --data \S*checkpoints/mnist\.npz"),
    ("report-ladder/out-is-a-result", "report-ladder {tmp}/result.json --out {tmp}/result.json",
     r"--out \S*result\.json is the input RESULT itself"),
    ("report-ladder/out-is-a-timing", "report-ladder {tmp}/result.json --timing {tmp}/timing.json "
     "--out {tmp}/timing.json", r"--out \S*timing\.json is the input --timing itself"),
    ("train-gates/result-over-the-settings", "train-gates --gate XOR --seed 1 --settings {tmp}/XOR.json --out {tmp}",
     r"--out \S* would replace the input --settings \S*XOR\.json \(the command writes XOR\.json there\)"),
    ("report-gates/out-is-a-result", "report-gates {tmp}/XOR.json --out {tmp}/XOR.json",
     r"--out \S*XOR\.json is the input RESULT itself"),
    ("train-mlp/timing-is-the-data", "train-mlp --data {npz} --out {tmp}/o --timing {tmp}/sub/../mnist.npz",
     r"--timing \S*mnist\.npz is the input --data itself"),
    ("train-mlp/data-in-the-checkpoints", "train-mlp --data {checkpoints}/mnist.npz --out {tmp}/o "
     "--checkpoint-dir {checkpoints}", r"--checkpoint-dir \S*checkpoints would replace the input --data"),
    ("train-dcgan/timing-is-the-statistics", "train-dcgan --data {npz} --dataset mnist --real-stats {tmp}/stats.npz "
     "--out {tmp}/o --timing {tmp}/stats.npz --device cpu", r"--timing \S*stats\.npz is the input --real-stats itself"),
    ("train-dcgan/out-is-the-data", "train-dcgan --data {npz} --dataset mnist --real-stats {tmp}/stats.npz "
     "--out {npz} --device cpu", r"--out \S*mnist\.npz is the input --data itself"),
    ("train-dcgan/summary-over-the-statistics", "train-dcgan --data {npz} --dataset mnist --real-stats "
     "{shard}/samples/s.png --out {shard} --device cpu", r"--out \S*shard would replace the input --real-stats "),
    ("prepare-segment/out-over-the-index", "prepare-segment --index {tmp}/index.json --out {tmp}",
     r"--out \S* would replace the input --index \S*index\.json \(the command writes index\.json there\)"),
    ("train-segment/timing-is-the-folds", "train-segment --data {shard} --folds-file {tmp}/summary.json --arm none "
     "--fold 0 --out {tmp}/o --timing {tmp}/summary.json",
     r"--timing \S*summary\.json is the input --folds-file itself"),
    ("train-segment/metrics-over-the-folds", "train-segment --data {shard} --folds-file {tmp}/metrics.json --arm none "
     "--fold 0 --out {tmp}", r"--out \S* would replace the input --folds-file \S*metrics\.json"),
    ("report-segment/out-is-a-metrics-file", "report-segment {tmp}/result.json --out {tmp}/result.json "
     "--figures {tmp}/f", r"--out \S*result\.json is the input METRICS itself"),
]


def snapshot(folder) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize(("argv", "message"), [pytest.param(argv, message, id=case) for case, argv, message in CASES])
def test_an_output_that_names_an_input_is_refused_before_anything_is_written(files, capsys, caplog, argv, message):
    if "{shard}/samples/" in argv:  # an input where the command writes its sample grids
        (files["shard"] / "samples").mkdir()
        (files["shard"] / "samples" / "s.png").write_text("a sample grid, now an input\n")
    before = snapshot(files["tmp"])
    code, output, errors = run_in_process(shlex.split(argv.format(**files)), capsys, caplog)
    assert code == 2, output[-3000:]
    assert len(errors) == 1 and re.search(message, errors[0].getMessage()), output[-3000:]
    assert "\n" not in errors[0].getMessage() and "Traceback" not in output
    assert snapshot(files["tmp"]) == before  # every input byte for byte, and nothing new


def test_every_command_is_in_the_table_or_has_nothing_to_overwrite():
    tested = {case[0].split("/")[0] for case in CASES}
    assert tested | set(NOTHING_TO_OVERWRITE) == set(cli.COMMANDS) and not tested & set(NOTHING_TO_OVERWRITE)
