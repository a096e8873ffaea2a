from __future__ import annotations

import math
import os
import signal

import pytest
import torch
from torch import nn

from mlnb.errors import ConfigError, DivergenceError
from mlnb.stopping import Stopped, cooperative_stop
from mlnb.training.checkpoint import Checkpointer
from mlnb.training.data import DeviceDataset, EpochBatches
from mlnb.training.device import build_model, setup_device
from mlnb.training.loop import Hook, MetricMeans, TrainingLoop

CPU = setup_device("cpu")


class RecordingTracker:
    """Records what the loop logs, like an active Tracker (the MLflow path is tested end to end elsewhere)."""

    run_id = "run-under-test"

    def __init__(self):
        self.logged: list[tuple[int, dict[str, float]]] = []
        self.flushes = 0

    def log_metrics(self, metrics, step):
        self.logged.append((step, dict(metrics)))

    def flush(self):
        self.flushes += 1


class Run:
    """A tiny regression trained on a fixed dataset: everything a real run has, in miniature."""

    def __init__(self, folder, total_steps=7, stop=None, stop_after=None, hooks=()):
        images = (torch.arange(12 * 4).reshape(12, 2, 2) % 251).numpy().astype("uint8")
        self.data = DeviceDataset(images, (torch.arange(12) % 2).numpy(), CPU)
        self.batches = EpochBatches(len(self.data), 4, CPU, 1, "loop-test")
        self.model = build_model(lambda: nn.Sequential(nn.Flatten(), nn.Linear(4, 1)), CPU, 1, "loop-test")
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9)
        self.checkpointer = Checkpointer(folder, fingerprint="f", models={"model": self.model},
                                         optimizers={"sgd": self.optimizer})
        self.tracker = RecordingTracker()
        self.stop, self.stop_after = stop, stop_after
        self.loop = TrainingLoop(total_steps=total_steps, images_per_step=4, log_every=3, checkpoint_every=5,
                                 checkpointer=self.checkpointer, tracker=self.tracker, device=CPU.device,
                                 stop=stop, hooks=hooks, description="loop-test")

    def step(self, step):
        images, labels = self.data.batch(self.batches.indices(step))
        loss = (self.model(images).squeeze(1) - labels.float()).square().mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        if step == self.stop_after:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives during this step
        return {"loss": loss.detach(), "step_number": torch.tensor(float(step))}

    def train(self):
        return self.loop.run(self.step, self.checkpointer.restore())


def test_means_are_logged_every_n_steps_and_at_the_end(tmp_path):
    run = Run(tmp_path)
    result = run.train()
    assert [step for step, _ in run.tracker.logged] == [3, 6, 7]
    assert [metrics["step_number"] for _, metrics in run.tracker.logged] == [2.0, 5.0, 7.0]
    assert result.steps == 7 and result.last_metrics["step_number"] == 7.0 and result.images_per_second > 0
    assert run.checkpointer.restore().step == 7  # checkpoint at the end (and at 5)


def test_a_stopped_run_checkpoints_and_its_resume_matches_an_uninterrupted_one(tmp_path):
    reference = Run(tmp_path / "reference")
    reference.train()

    with cooperative_stop() as stop, pytest.raises(Stopped) as stopped_error:
        stopped = Run(tmp_path / "stopped", stop=stop, stop_after=4)
        stopped.train()
    assert stopped_error.value.signal == "SIGTERM"
    assert stopped.checkpointer.restore().step == 4
    assert stopped.tracker.flushes >= 1  # nothing logged is left in a buffer

    resumed = Run(tmp_path / "stopped")
    resumed.train()
    assert stopped.tracker.logged + resumed.tracker.logged == reference.tracker.logged  # none lost, none twice
    for ours, theirs in zip(resumed.model.parameters(), reference.model.parameters(), strict=True):
        assert torch.equal(ours, theirs)


def test_hooks_run_every_n_steps_and_at_the_end_and_their_metrics_are_logged(tmp_path):
    calls = []

    def evaluate(step, loop):
        calls.append((step, loop.train_seconds > 0))
        return {"test_metric": float(step)}

    run = Run(tmp_path, hooks=(Hook(every=2, call=evaluate),))
    run.train()
    assert calls == [(2, True), (4, True), (6, True), (7, True)]
    assert (4, {"test_metric": 4.0}) in run.tracker.logged


def test_resuming_a_checkpoint_past_the_end_is_refused(tmp_path):
    Run(tmp_path, total_steps=7).train()
    with pytest.raises(ConfigError, match="checkpoint at step 7 is past the run's 5 steps"):
        Run(tmp_path, total_steps=5).train()


@pytest.mark.parametrize("key", ["total_steps", "log_every", "checkpoint_every", "images_per_step"])
def test_non_positive_counts_are_refused(tmp_path, key):
    settings = {"total_steps": 3, "log_every": 1, "checkpoint_every": 1, "images_per_step": 1, key: 0}
    with pytest.raises(ConfigError, match="must be >= 1, got 0"):
        TrainingLoop(**settings, checkpointer=None, tracker=None, device=CPU.device)


def test_metric_means_survive_a_state_round_trip():
    means = MetricMeans()
    means.add({"loss": torch.tensor(1.0)})
    restored = MetricMeans()
    restored.load_state_dict(means.state_dict(), CPU.device)
    restored.add({"loss": torch.tensor(3.0)})
    assert restored.take() == {"loss": 2.0} and restored.count == 0


class FailingFlushTracker(RecordingTracker):
    """The store goes away: every flush from the second on raises."""

    def flush(self):
        super().flush()
        if self.flushes > 1:
            raise ConnectionError("the tracking store is unreachable")


def test_a_failed_flush_fails_the_run_before_its_checkpoint(tmp_path):
    run = Run(tmp_path)
    run.loop.tracker = run.tracker = FailingFlushTracker()
    with pytest.raises(ConnectionError):
        run.train()
    assert run.checkpointer.restore().step == 5  # the first checkpoint; the second (at 7) was never written
    assert run.tracker.flushes == 2


class DivergingRun(Run):
    def __init__(self, folder, diverges_at, **kwargs):
        super().__init__(folder, **kwargs)
        self.diverges_at = diverges_at

    def step(self, step):
        metrics = super().step(step)
        return {**metrics, "loss": metrics["loss"] * math.inf} if step == self.diverges_at else metrics


def test_a_loss_that_becomes_non_finite_stops_the_run_naming_its_steps(tmp_path):
    run = DivergingRun(tmp_path, diverges_at=5)
    with pytest.raises(DivergenceError, match=r"^loop-test: training diverged in steps 4-5 \(loss inf\)"):
        run.train()
    assert [step for step, _ in run.tracker.logged] == [3]  # steps 1-3; nothing of steps 4-5
    assert run.checkpointer.restore() is None  # the checkpoint due at step 5 was not written


def test_a_hook_metric_that_becomes_non_finite_stops_the_run(tmp_path):
    run = Run(tmp_path, hooks=(Hook(every=2, call=lambda step, loop: {"error": math.nan if step == 4 else 1.0}),))
    with pytest.raises(DivergenceError, match=r"^loop-test: training diverged in step 4 \(error nan\)"):
        run.train()
    assert (4, {"error": math.nan}) not in run.tracker.logged and (2, {"error": 1.0}) in run.tracker.logged
