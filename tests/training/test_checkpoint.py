from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from mlnb.errors import ConfigError, DataError
from mlnb.training import checkpoint as checkpoint_module
from mlnb.training.checkpoint import Checkpointer, checkpoint_folder, load_checkpoint, save_checkpoint


def trained_objects(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=10)
    generator = torch.Generator().manual_seed(seed)
    return model, optimizer, scheduler, generator


def step(model, optimizer, scheduler, generator) -> None:
    loss = model(torch.rand(4, 3, generator=generator)).square().mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()


def checkpointer(folder, objects, fingerprint="abc") -> Checkpointer:
    model, optimizer, scheduler, generator = objects
    return Checkpointer(folder, fingerprint=fingerprint, models={"model": model}, optimizers={"adam": optimizer},
                        schedulers={"lr": scheduler}, generators={"batches": generator})


def test_restore_continues_exactly_like_an_uninterrupted_run(tmp_path):
    reference = trained_objects()
    for _ in range(5):
        step(*reference)

    first = trained_objects()
    for _ in range(3):
        step(*first)
    checkpointer(tmp_path, first).save(3, "run-1", extra={"fixed_z": torch.ones(2)})

    resumed_objects = trained_objects(seed=99)  # other weights and generator until restored
    resumed = checkpointer(tmp_path, resumed_objects).restore()
    assert (resumed.step, resumed.run_id) == (3, "run-1")
    assert torch.equal(resumed.extra["fixed_z"], torch.ones(2))
    for _ in range(2):
        step(*resumed_objects)
    for ours, theirs in zip(resumed_objects[0].parameters(), reference[0].parameters(), strict=True):
        assert torch.equal(ours, theirs)
    assert resumed_objects[2].get_last_lr() == reference[2].get_last_lr()


def test_no_checkpoint_or_other_settings_start_afresh(tmp_path):
    objects = trained_objects()
    assert checkpointer(tmp_path, objects).restore() is None
    checkpointer(tmp_path, objects, fingerprint="old").save(2, None)
    assert checkpointer(tmp_path, objects, fingerprint="new").restore() is None


def test_finish_moves_last_to_final_so_the_next_job_starts_afresh(tmp_path):
    objects = trained_objects()
    saver = checkpointer(tmp_path, objects)
    saver.save(10, "run-1")
    saver.finish()
    assert not saver.last.exists() and load_checkpoint(saver.final)["step"] == 10
    assert saver.restore() is None


def test_different_objects_are_refused_by_name(tmp_path):
    objects = trained_objects()
    checkpointer(tmp_path, objects).save(1, None)
    other = Checkpointer(tmp_path, fingerprint="abc", models={"generator": objects[0]})
    with pytest.raises(DataError, match=r"holds models \['model'\], expected \['generator'\]"):
        other.restore()


def test_an_interrupted_write_never_replaces_a_good_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1})

    def dies_half_way(state, handle):
        handle.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of torch.save

    monkeypatch.setattr(checkpoint_module.torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"step": 2})
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


@pytest.mark.parametrize(("content", "message"), [
    (b"garbage", "not a readable checkpoint"), (None, "not an mlnb checkpoint")])
def test_unreadable_or_foreign_files_are_named(tmp_path, content, message):
    path = tmp_path / "last.pt"
    if content is None:
        torch.save({"weights": torch.zeros(1)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(DataError, match=f"{path}: {message}"):
        load_checkpoint(path)


def test_checkpoints_live_under_results_checkpoints():
    assert checkpoint_folder("cnn", "adam-1000").as_posix() == "results/checkpoints/cnn/adam-1000"


HOLD_THE_FOLDER = """
import sys, time
from pathlib import Path
from mlnb.training.checkpoint import Checkpointer
Checkpointer(Path(sys.argv[1]), fingerprint="abc", models={}).restore()
print("holding", flush=True)
time.sleep(300)
"""


def another_job_on(folder: Path) -> subprocess.Popen:
    """A process that has restored from ``folder`` (so holds it) and runs on until it is killed."""
    job = subprocess.Popen([sys.executable, "-c", HOLD_THE_FOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert job.stdout.readline() == "holding\n"
    return job


def test_one_job_per_folder_and_a_killed_job_does_not_leave_it_locked(tmp_path):
    job = another_job_on(tmp_path)
    try:
        with pytest.raises(ConfigError, match=f"^checkpoint folder {tmp_path} is in use by another job"):
            checkpointer(tmp_path, trained_objects()).restore()
    finally:
        job.kill()
        job.wait()
    saver = checkpointer(tmp_path, trained_objects())
    assert saver.restore() is None  # the lock went with the killed process
    saver.save(1, None)
    saver.finish()  # releases it for the next job
    another_job_on(tmp_path).kill()


def test_the_next_job_removes_the_temporary_files_of_a_killed_writer(tmp_path):
    objects = trained_objects()
    checkpointer(tmp_path / "earlier", objects).save(1, None)
    folder = tmp_path / "killed"  # a job killed while writing its second checkpoint left it so
    folder.mkdir()
    shutil.copyfile(tmp_path / "earlier" / "last.pt", folder / "last.pt")
    stray = folder / ".last.pt.x1y2z3.part.pt"  # as save_checkpoint (mlnb.io.atomic_path) names its temporary
    stray.write_bytes(b"PK\x03\x04 half a zip")
    assert checkpointer(folder, objects).restore().step == 1
    assert sorted(path.name for path in folder.iterdir()) == [".lock", "last.pt"]
