"""The from-scratch network (mlnb.scratch.network) learns MNIST with mini-batches (``mlnb train-mlp``:
:mod:`mlnb.scratch.train_mlp_cli`).

The same hand-written back-propagation that learns the logic gates, here 784-100-10 on the
prepared ``mnist.npz`` (uint8 ``x_train``, ``y_train``, ``x_test``, ``y_test``), on numpy
or on torch (on ``train.device``: CUDA when present). The whole set is moved to the array
namespace once and scaled to [0, 1] there; every epoch visits the training images in an
order drawn from ``(seed, "mlp", "epoch", epoch)``, so a seed fixes the run. :func:`train_mlp`
writes into the run's ``out`` ``result.json`` (settings, per-epoch error and test accuracy, the
confusion matrix), ``model.npz`` (the trained weights, loadable with ``Network.load``),
``confusion.png`` and ``misclassified.png``; into its ``timing`` file the wall times and images/s;
MLflow gets the same with ``step`` = batches seen. It runs through mlnb.training.loop like the CNN:
checkpoints every ``train.checkpoint_every`` batches; a stopped run (SIGTERM, SIGINT, SIGUSR1)
checkpoints and raises :class:`mlnb.stopping.Stopped`, and the same call resumes it in the same MLflow run.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import array_api_compat
import numpy as np
import PIL.Image
import torch

from mlnb import tracking
from mlnb.data.mnist import IMAGE_SHAPE, MnistArrays, read_mnist_npz
from mlnb.errors import ConfigError, DataError
from mlnb.io import atomic_path, file_md5
from mlnb.rng import generator
from mlnb.scratch.network import Network, to_numpy
from mlnb.scratch.settings import MlpSettings
from mlnb.stopping import cooperative_stop
from mlnb.training import figures
from mlnb.training.checkpoint import Checkpointer, Resumed
from mlnb.training.device import cpu_threads
from mlnb.training.loop import Hook, LoopResult, TrainingLoop
from mlnb.training.options import RunOptions
from mlnb.training.outputs import fingerprint, write_json
from mlnb.training.settings import TrainSettings

log = logging.getLogger(__name__)

EVAL_BATCH = 10_000


def array_namespace(backend: str, device: str = "auto"):
    """(namespace, device): numpy on the CPU, or torch on ``device`` (train.device: auto, cpu, cuda, cuda:N)."""
    if backend == "numpy":
        if device not in ("auto", "cpu"):
            raise ConfigError(f"device {device!r}: the numpy backend runs on the CPU only")
        return array_api_compat.array_namespace(np.empty(0)), None
    import torch

    from mlnb.training.device import choose_device

    return array_api_compat.array_namespace(torch.empty(0)), choose_device(device)


def load_mnist(path: Path, width: int) -> MnistArrays:
    """The prepared MNIST ``.npz`` (read and checked by mlnb.data.mnist), images flattened to rows of ``width``."""
    data = read_mnist_npz(path)
    pixels = int(np.prod(data.x_train.shape[1:]))
    if pixels != width:
        raise DataError(f"{path}: x_train holds {data.x_train.dtype} images of shape {data.x_train.shape[1:]} "
                        f"({pixels} pixels); the network's input layer takes {width} uint8 pixels")
    return dataclasses.replace(data, x_train=data.x_train.reshape(-1, width), x_test=data.x_test.reshape(-1, width))


def predict_all(net: Network, images) -> np.ndarray:
    """Predicted classes of every row, evaluated EVAL_BATCH rows at a time, as numpy."""
    return np.concatenate([to_numpy(net.predict(images[start:start + EVAL_BATCH]))
                           for start in range(0, images.shape[0], EVAL_BATCH)])


class MlpTraining:
    """One MLP run as the steps of mlnb.training.loop: step s trains batch s, an epoch ends every ``steps_per_epoch``.

    Epoch e visits the training images in the order drawn from ``(seed, "mlp", "epoch", e)``
    in batches of ``batch_size`` (the last one smaller when they do not divide), so step s's
    batch depends on s alone. The state a checkpoint keeps (``state_dict``, for the
    Checkpointer) is the network with its momentum terms, the running error of the epoch under
    way and the records of the epochs done: a run stopped mid-epoch and resumed takes the same
    steps, and logs the same epochs, as an uninterrupted one.
    """

    def __init__(self, settings: MlpSettings, data: MnistArrays, seed: int, device: str = "auto"):
        self.settings, self.seed = settings, seed
        self.xp, self.device = array_namespace(settings.backend, device)
        self.net = Network.initialise(settings.layers, settings.transfers, generator(seed, "mlp", "init"),
                                      xp=self.xp, device=self.device, dtype=settings.dtype)
        like = self.net.weights[0]
        self.x_train = self.xp.astype(self.xp.asarray(data.x_train, device=self.device), like.dtype) / 255
        self.x_test = self.xp.astype(self.xp.asarray(data.x_test, device=self.device), like.dtype) / 255
        self.y_train = self.net.targets(data.y_train)
        self.net.targets(data.y_test)  # refuses test labels outside the output layer's range
        self.y_test = data.y_test
        self.samples = self.x_train.shape[0]
        self.steps_per_epoch = -(-self.samples // settings.batch_size)
        self.total_steps = settings.epochs * self.steps_per_epoch
        self.records: list[dict] = []
        self._epoch_error = self._zero()
        self._epoch_began = 0.0  # the loop's train_seconds when the epoch under way began
        self._order: tuple[int, object] | None = None  # (epoch, its order of the training images)

    def _zero(self):
        return self.xp.zeros((), dtype=self.net.weights[0].dtype, device=self.device)

    def kind(self) -> str:
        """What the numbers depend on besides settings, seed and data: numpy, or torch and its device type."""
        return "numpy" if self.device is None else f"torch-{self.device.type}"

    def fingerprint(self, data_md5: str) -> str:
        """What shapes the run (every mlp setting but the operational ones, the seed, the array namespace and
        device, the data): a checkpoint with another fingerprint is not resumed."""
        return fingerprint(settings=self.settings.defining(), seed=self.seed, kind=self.kind(), data_md5=data_md5)

    def step(self, step: int) -> dict:
        """Train batch ``step`` (1-based); its error goes into the epoch's sum, read at the epoch's end."""
        epoch, batch = divmod(step - 1, self.steps_per_epoch)
        size = self.settings.batch_size
        rows = self._epoch_order(epoch + 1)[batch * size:(batch + 1) * size]
        xp = self.xp
        self._epoch_error = self._epoch_error + self.net.train_step(
            xp.take(self.x_train, rows, axis=0), xp.take(self.y_train, rows, axis=0),
            self.settings.learning_rate, self.settings.momentum, reduction="mean")
        return {}

    def _epoch_order(self, epoch: int):
        if self._order is None or self._order[0] != epoch:
            order = generator(self.seed, "mlp", "epoch", epoch).permutation(self.samples)
            self._order = (epoch, self.xp.asarray(order, device=self.device))
        return self._order[1]

    def end_epoch(self, step: int, loop: TrainingLoop) -> dict[str, float]:
        """The loop's hook at each epoch's last step: test accuracy, the epoch's record, its logged metrics."""
        error = float(self._epoch_error) / self.samples
        elapsed = loop.train_seconds - self._epoch_began
        self._epoch_error, self._epoch_began = self._zero(), loop.train_seconds
        accuracy = float(np.mean(self.predict_test() == self.y_test))
        record = {"epoch": step // self.steps_per_epoch, "step": step, "train_error": error,
                  "test_accuracy": accuracy, "seconds": elapsed, "train_images_per_second": self.samples / elapsed}
        self.records.append(record)
        log.info("epoch %d: train error %.4f per image, test accuracy %.4f, %.0f images/s", record["epoch"], error,
                 accuracy, record["train_images_per_second"])
        return {key: record[key] for key in ("train_error", "test_accuracy", "seconds", "train_images_per_second")}

    def predict_test(self) -> np.ndarray:
        return predict_all(self.net, self.x_test)

    def state_dict(self) -> dict:
        error = torch.from_numpy(np.array(to_numpy(self._epoch_error)))
        return {"network": self.net.state_dict(), "epoch_error": error, "epoch_began": self._epoch_began,
                "records": [dict(record) for record in self.records]}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["network"])
        self._epoch_error = self.xp.asarray(state["epoch_error"].numpy(), dtype=self.net.weights[0].dtype,
                                            device=self.device, copy=True)
        self._epoch_began = float(state["epoch_began"])
        self.records = [dict(record) for record in state["records"]]

    def run(self, checkpointer: Checkpointer, resumed: Resumed | None, tracker, checkpoint_every: int,
            stop=None) -> LoopResult:
        """The remaining steps (all of them, or those after ``resumed``), checkpointed and logged to ``tracker``."""
        loop = TrainingLoop(total_steps=self.total_steps, images_per_step=self.settings.batch_size,
                            log_every=self.steps_per_epoch, checkpoint_every=checkpoint_every,
                            checkpointer=checkpointer, tracker=tracker,
                            device=self.device or torch.device("cpu"), stop=stop,
                            hooks=(Hook(self.steps_per_epoch, self.end_epoch),),
                            description=f"mlp-{self.settings.backend}")
        return loop.run(self.step, resumed)


def train_mlp(settings: MlpSettings, train: TrainSettings,
              options: RunOptions) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the network on ``options.data`` (of the train settings it takes the device, threads and checkpoint
    interval), write its outputs and log them; (the result written to ``result.json``, the wall times)."""
    data = load_mnist(options.data, settings.layers[0])
    training = MlpTraining(settings, data, options.seed, train.device)
    checkpointer = Checkpointer(options.checkpoints("mlp", settings.backend),
                                fingerprint=training.fingerprint(file_md5(options.data)), models={"mlp": training})
    resumed = checkpointer.restore()
    params = {"seed": options.seed, "device": train.device, **settings.defining()}
    with tracking.tracked_run(options.tracking, f"mlp-{settings.backend}", params=params,
                              inputs={"mnist": options.data}, run_id=resumed.run_id if resumed else None,
                              tags={"mlnb.rule": options.rule, "mlnb.model": "backprop"}) as tracker:
        with cooperative_stop() as stop, cpu_threads(train.threads):
            seconds = training.run(checkpointer, resumed, tracker, train.checkpoint_every, stop).train_seconds
        records, net, predictions = training.records, training.net, training.predict_test()
        counts = figures.confusion_counts(data.y_test, predictions, settings.layers[-1])
        timed = ("seconds", "train_images_per_second")
        timing = {"train_seconds": seconds, "train_images_per_second": settings.epochs * len(data.y_train) / seconds,
                  "epochs": [{key: record[key] for key in ("epoch", *timed)} for record in records]}
        result = {
            "seed": options.seed, "settings": settings.as_dict(),
            "device": str(array_api_compat.device(net.weights[0])),
            "train_images": len(data.y_train), "test_images": len(data.y_test),
            "test_accuracy": records[-1]["test_accuracy"],
            "epochs": [{key: value for key, value in record.items() if key not in timed} for record in records],
            "confusion_matrix": counts.tolist(),
        }
        out = options.out
        out.mkdir(parents=True, exist_ok=True)
        net.save(out / "model.npz")
        figures.save_figure(figures.confusion_figure(counts, "MLP (from scratch): test confusion matrix"),
                            out / "confusion.png")
        grid, wrong = figures.misclassified_grid(data.x_test.reshape(-1, *IMAGE_SHAPE), data.y_test, predictions)
        with atomic_path(out / "misclassified.png") as tmp:
            PIL.Image.fromarray(grid).save(tmp)
        result["misclassified_shown"] = wrong
        write_json(out / "result.json", result, sort_keys=False)
        if options.timing is not None:
            write_json(options.timing, timing, sort_keys=False)
        tracker.log_metrics({"final_test_accuracy": result["test_accuracy"],
                             "final_train_images_per_second": timing["train_images_per_second"]})
        for name in ("result.json", "model.npz", "confusion.png", "misclassified.png"):
            tracker.log_artifact(out / name)
    checkpointer.finish()
    return result, timing
