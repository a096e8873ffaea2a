"""The step loop every training command runs: progress, metrics, checkpoints, cooperative stop.

A command provides ``step_fn(step) -> {name: 0-d tensor}`` (one optimisation step
on batch ``step``) and the loop does the rest, in named steps: run the step,
add its metrics to running sums (on the device: no host sync per step), log
their means every ``log_every`` steps, call the command's periodic hooks
(evaluation, sample grids), checkpoint every ``checkpoint_every`` steps and at
the end, and stop cleanly between two steps when a stop was requested
(:mod:`mlnb.stopping`): flush the metrics, checkpoint, raise ``Stopped``.

In a data-parallel job (:mod:`mlnb.training.distributed`) every process runs the
loop: the metrics are averaged over the processes before they are logged or
checkpointed, the processes agree on a stop after every step, and only rank 0
runs the hooks, logs and writes the checkpoint (the others wait for it when
they stop).

Steps are numbered from 1; metrics of step s are logged with ``step=s``. The
running sums and the training time travel in the checkpoint, so a resumed run
logs exactly the values, at exactly the steps, of an uninterrupted one.

Every step once, whatever stops the run. A checkpoint at step s is written only
after the tracker has flushed every metric up to s to the store: when the flush
fails (the store is down), the run fails before that checkpoint, and the rerun
resumes from the one before, whose metrics are all in the store. The store may
hold more than the checkpoint has seen (the tracker also flushes every few
seconds, and a job can be killed between a flush and the next checkpoint); a
resumed run computes those steps again, with the same values, and its tracker
leaves out every point the store already holds (each metric's steps up to the
last one stored: :meth:`mlnb.tracking.Tracker.log_metrics` on a continued run).
So nothing is buffered beyond a flush interval, and nothing is logged twice.

A run that diverges stops: whenever the loop leaves the steps (to log, run a
hook, checkpoint or stop: it waits for the device there anyway) it checks that
the running sums of the metrics are finite, and it checks every metric a hook
returns; a NaN or infinity is a :class:`mlnb.errors.DivergenceError` naming the
steps it came from, raised before the diverged metrics are logged or
checkpointed and before the command writes its outputs. The sums carry a NaN
from any step to the next check, so none is missed; the price of not syncing
every step is that the error names the steps since the last log (up to
``log_every`` of them), not the first bad one. (Steps that report no metrics,
the MLP's, are checked through what its epoch hook returns.)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from tqdm import tqdm

from mlnb.errors import ConfigError, DivergenceError
from mlnb.stopping import Stopped
from mlnb.training.checkpoint import Checkpointer, Resumed
from mlnb.training.distributed import World

log = logging.getLogger(__name__)

StepFn = Callable[[int], Mapping[str, torch.Tensor]]


class MetricMeans:
    """Running sums of per-step metrics (kept on their device), averaged when taken."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, metrics: Mapping[str, torch.Tensor]) -> None:
        for name, value in metrics.items():
            value = value.detach().float()
            self.sums[name] = self.sums[name] + value if name in self.sums else value.clone()
        self.count += 1

    def non_finite(self) -> dict[str, float]:
        """The metrics whose sum is NaN or infinite (a step since the last take diverged), with those sums."""
        sums = {name: float(total) for name, total in self.sums.items()}
        return {name: total for name, total in sums.items() if not math.isfinite(total)}

    def take(self) -> dict[str, float]:
        """The means since the last take (one host sync), and start over."""
        means = {name: float(total) / self.count for name, total in self.sums.items()}
        self.sums, self.count = {}, 0
        return means

    def state_dict(self) -> dict[str, Any]:
        return {"sums": {name: total.cpu() for name, total in self.sums.items()}, "count": self.count}

    def load_state_dict(self, state: Mapping[str, Any], device: torch.device) -> None:
        self.sums = {name: total.to(device) for name, total in state["sums"].items()}
        self.count = int(state["count"])


@dataclasses.dataclass(frozen=True)
class Hook:
    """``call(step, loop)`` every ``every`` steps and at the last step; metrics it returns are logged."""

    every: int
    call: Callable[[int, TrainingLoop], Mapping[str, float] | None]


@dataclasses.dataclass
class LoopResult:
    steps: int
    last_metrics: dict[str, float]
    train_seconds: float
    images_per_second: float


class TrainingLoop:
    """Runs steps ``start + 1 .. total_steps`` of one run (see the module's docstring)."""

    def __init__(self, *, total_steps: int, images_per_step: int, log_every: int, checkpoint_every: int,
                 checkpointer: Checkpointer, tracker, device: torch.device, stop=None,
                 hooks: tuple[Hook, ...] = (), extra: Mapping[str, Any] | None = None,
                 description: str = "train", world: World = World()):
        """``extra``: more state kept in every checkpoint (e.g. a DCGAN's fixed z); read it back from
        ``Resumed.extra`` before building the loop."""
        for name, value in (("steps", total_steps), ("log_every", log_every),
                            ("checkpoint_every", checkpoint_every), ("images per step", images_per_step)):
            if value < 1:
                raise ConfigError(f"{description}: {name} must be >= 1, got {value}")
        self.total_steps, self.images_per_step = total_steps, images_per_step
        self.log_every, self.checkpoint_every = log_every, checkpoint_every
        self.checkpointer, self.tracker, self.device, self.stop = checkpointer, tracker, device, stop
        self.hooks, self.description, self.world = hooks, description, world
        self.extra = dict(extra or {})
        self.means = MetricMeans()
        self.train_seconds = 0.0  # time spent in steps only (not in hooks or checkpoints)
        self.last_metrics: dict[str, float] = {}

    def run(self, step_fn: StepFn, resumed: Resumed | None = None) -> LoopResult:
        start = self._restore(resumed)
        bar = tqdm(total=self.total_steps, initial=start, desc=self.description, unit="step",
                   disable=None if self.world.is_main else True, file=sys.stderr, dynamic_ncols=True)
        try:
            for step in range(start + 1, self.total_steps + 1):
                self._timed_step(step_fn, step)
                bar.update(1)
                last = step == self.total_steps
                if step % self.log_every == 0 or last:
                    self._log(step, bar)
                for hook in self.hooks if self.world.is_main else ():
                    if step % hook.every == 0 or last:
                        self._run_hook(hook, step)
                stop_signal = self._stop_signal()
                if stop_signal is not None:
                    self._checkpoint(step)
                    self.world.barrier()  # every process exits once the checkpoint is written
                    log.warning("%s: stopped by %s after step %d (checkpoint written)",
                                self.description, stop_signal, step)
                    raise Stopped(stop_signal)
                if step % self.checkpoint_every == 0 or last:
                    self._checkpoint(step)
        finally:
            bar.close()
        # train_seconds spans every resumed part of the run, so the rate counts all its steps
        rate = self.images_per_step * self.total_steps / self.train_seconds if self.train_seconds else 0.0
        return LoopResult(self.total_steps, self.last_metrics, self.train_seconds, rate)

    def _restore(self, resumed: Resumed | None) -> int:
        if resumed is None:
            return 0
        state = resumed.extra.get("loop")
        if state is not None:
            self.means.load_state_dict(state["means"], self.device)
            self.train_seconds = float(state["train_seconds"])
            self.last_metrics = dict(state["last_metrics"])
        if resumed.step > self.total_steps:
            raise ConfigError(f"{self.description}: checkpoint at step {resumed.step} is past the "
                              f"run's {self.total_steps} steps")
        return resumed.step

    def _timed_step(self, step_fn: StepFn, step: int) -> None:
        began = time.perf_counter()
        self.means.add(step_fn(step))
        leaves = self._leaves_the_steps(step)
        if leaves:
            self._synchronize()  # the device's queued work counts as training time, not the hook's
        self.train_seconds += time.perf_counter() - began
        if leaves:
            first = step - self.means.count + 1  # the sums hold the steps since the last log
            steps = f"steps {first}-{step}" if first < step else f"step {step}"
            self._refuse_divergence(self.means.non_finite(), steps)

    def _refuse_divergence(self, non_finite: Mapping[str, float], steps: str) -> None:
        if non_finite:
            values = ", ".join(f"{name} {value}" for name, value in sorted(non_finite.items()))
            raise DivergenceError(f"{self.description}: training diverged in {steps} ({values}): stopped "
                                  "without writing outputs (a lower learning rate may help)")

    def _leaves_the_steps(self, step: int) -> bool:
        """Whether anything but a step (a log, hook, checkpoint or stop) follows ``step``."""
        every = (self.log_every, self.checkpoint_every, *(hook.every for hook in self.hooks))
        return (step == self.total_steps or any(step % interval == 0 for interval in every)
                or (self.stop is not None and self.stop.requested))

    def _stop_signal(self) -> str | None:
        """The signal to stop for after this step: the same on every process."""
        if self.stop is None:
            return None
        return self.world.agreed_stop(self.stop.signal if self.stop.requested else None)

    def _average_means(self) -> None:
        """Every process's running sums become their mean over the processes (a no-op in one process)."""
        self.means.sums = self.world.average(self.means.sums, self.device)

    def _log(self, step: int, bar: tqdm) -> None:
        self._average_means()
        metrics = self.means.take()
        if not metrics:  # steps that report none (the MLP's: its epoch hook logs each epoch)
            return
        self.last_metrics = metrics
        if self.world.is_main:
            self.tracker.log_metrics(self.last_metrics, step=step)
        shown = {name: f"{value:.4g}" for name, value in self.last_metrics.items()}
        bar.set_postfix(shown, refresh=False)
        if bar.disable and self.world.is_main:  # no terminal: one line per log step instead of a bar
            log.info("%s step %d/%d %s", self.description, step, self.total_steps,
                     " ".join(f"{name}={value}" for name, value in shown.items()))

    def _run_hook(self, hook: Hook, step: int) -> None:
        metrics = hook.call(step, self)
        if metrics:
            self._refuse_divergence({name: value for name, value in metrics.items() if not math.isfinite(value)},
                                    f"step {step}")
            self.tracker.log_metrics(metrics, step=step)

    def _checkpoint(self, step: int) -> None:
        self._average_means()  # the sums a resumed run continues, with any number of processes
        if not self.world.is_main:
            return
        loop_state = {"means": self.means.state_dict(), "train_seconds": self.train_seconds,
                      "last_metrics": self.last_metrics}
        self.tracker.flush()  # first: a checkpoint never gets ahead of the store (see the module's docstring)
        self.checkpointer.save(step, self.tracker.run_id, extra={**self.extra, "loop": loop_state})

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
