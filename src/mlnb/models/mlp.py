"""``mlnb train-mlp``: the from-scratch network (mlnb.models.backprop) learns MNIST with mini-batches.

The same hand-written back-propagation that learns the logic gates, here 784-100-10 on the
prepared ``mnist.npz`` (uint8 ``x_train``, ``y_train``, ``x_test``, ``y_test``), on numpy
or on torch (on ``--device``: CUDA when present). The whole set is moved to the array
namespace once and scaled to [0, 1] there; every epoch visits the training images in an
order drawn from ``(seed, "mlp", "epoch", epoch)``, so a seed fixes the run. ``--out``
receives ``result.json`` (settings, per-epoch error and test accuracy, images/s, the
confusion matrix), ``model.npz`` (the trained weights, loadable with ``Network.load``),
``confusion.png`` and ``misclassified.png``; ``--timing`` the wall times; MLflow gets the same
with ``step`` = batches seen.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import ClassVar

import array_api_compat
import numpy as np
import PIL.Image

from mlnb import tracking
from mlnb.data.mnist import MnistArrays, read_mnist_npz
from mlnb.errors import ConfigError, DataError
from mlnb.io import atomic_path
from mlnb.models.backprop import Network, to_numpy
from mlnb.preview import image_grid
from mlnb.rng import generator
from mlnb.settings import Settings, add_settings_arguments, settings_from_args

log = logging.getLogger(__name__)

EVAL_BATCH = 10_000


@dataclasses.dataclass(frozen=True)
class MlpSettings(Settings):
    """The ``mlp`` config section (descriptions in config.schema.yaml)."""

    section: ClassVar[str] = "mlp"
    layers: tuple[int, ...]
    transfers: tuple[str, ...]
    learning_rate: float
    momentum: float
    batch_size: int
    epochs: int
    backend: str
    dtype: str


def array_namespace(backend: str, device: str = "auto"):
    """(namespace, device): numpy on the CPU, or torch on ``device`` (train.device: auto, cpu, cuda, cuda:N)."""
    if backend == "numpy":
        if device not in ("auto", "cpu"):
            raise ConfigError(f"device {device!r}: the numpy backend runs on the CPU only")
        return array_api_compat.array_namespace(np.empty(0)), None
    import torch

    from mlnb.train.device import choose_device

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


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    """counts[true, predicted]."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (labels.astype(np.int64), predictions.astype(np.int64)), 1)
    return counts


def train(settings: MlpSettings, data: MnistArrays, seed: int, device: str = "auto", on_epoch=None):
    """Train and evaluate; returns (network, per-epoch records, test predictions, seconds spent training).

    ``on_epoch(record)`` receives each epoch's record (epoch, step, train_error, test_accuracy, ...).
    """
    xp, device = array_namespace(settings.backend, device)
    net = Network.initialise(settings.layers, settings.transfers, generator(seed, "mlp", "init"),
                             xp=xp, device=device, dtype=settings.dtype)
    like = net.weights[0]
    x_train = xp.astype(xp.asarray(data.x_train, device=device), like.dtype) / 255
    x_test = xp.astype(xp.asarray(data.x_test, device=device), like.dtype) / 255
    y_train = net.targets(data.y_train)
    net.targets(data.y_test)  # refuses test labels outside the output layer's range
    samples, batch = x_train.shape[0], settings.batch_size
    records, step, seconds = [], 0, 0.0
    for epoch in range(1, settings.epochs + 1):
        order = generator(seed, "mlp", "epoch", epoch).permutation(samples)
        order = xp.asarray(order, device=device)
        started = time.perf_counter()
        error = xp.zeros((), dtype=like.dtype, device=device)
        for start in range(0, samples, batch):
            rows = order[start:start + batch]
            error = error + net.train_step(xp.take(x_train, rows, axis=0), xp.take(y_train, rows, axis=0),
                                           settings.learning_rate, settings.momentum, reduction="mean")
            step += 1
        error = float(error) / samples  # float() waits for the device: the epoch's time is complete
        elapsed = time.perf_counter() - started
        seconds += elapsed
        predictions = predict_all(net, x_test)
        record = {"epoch": epoch, "step": step, "train_error": error,
                  "test_accuracy": float(np.mean(predictions == data.y_test)),
                  "seconds": elapsed, "train_images_per_second": samples / elapsed}
        records.append(record)
        log.info("epoch %d: train error %.4f per image, test accuracy %.4f, %.0f images/s", epoch, error,
                 record["test_accuracy"], record["train_images_per_second"])
        if on_epoch is not None:
            on_epoch(record)
    return net, records, predictions, seconds


def plot_confusion(counts: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 4.5), dpi=100)
    image = axes.imshow(counts, cmap="Blues")
    for (true, predicted), count in np.ndenumerate(counts):
        axes.text(predicted, true, str(count), ha="center", va="center", fontsize=6,
                  color="white" if count > counts.max() / 2 else "black")
    axes.set(xlabel="predicted", ylabel="true", xticks=range(len(counts)), yticks=range(len(counts)),
             title="MLP (from scratch): test confusion matrix")
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp)
    plt.close(figure)


def misclassified_grid(images: np.ndarray, labels: np.ndarray, predictions: np.ndarray, limit: int = 64):
    """The first ``limit`` misclassified test digits as one grid (a blank digit when none is wrong), and which."""
    wrong = np.flatnonzero(labels != predictions)[:limit]
    side = int(np.sqrt(images.shape[1]))
    if wrong.size == 0:
        return np.full((side, side), 255, np.uint8), []
    grid = image_grid(images[wrong].reshape(-1, side, side), columns=8)
    return grid, [{"index": int(i), "label": int(labels[i]), "predicted": int(predictions[i])} for i in wrong]


def configure_parser(parser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="prepared MNIST .npz (results/data/mnist/mnist.npz)")
    parser.add_argument("--seed", type=int, required=True, help="master seed (initial weights and batch order)")
    parser.add_argument("--device", default="auto",
                        help="torch backend: auto (CUDA when present), cpu, cuda or cuda:N (config train.device)")
    parser.add_argument("--out", type=Path, required=True, help="output folder: result.json, model.npz, figures")
    parser.add_argument("--timing", type=Path, default=None,
                        help="JSON file for the wall times (kept out of result.json, which a seed fixes byte for byte)")
    add_settings_arguments(parser, MlpSettings)
    tracking.add_tracking_arguments(parser)


def run(args) -> int:
    settings = settings_from_args(MlpSettings, args)
    data = load_mnist(args.data, settings.layers[0])
    params = {"seed": args.seed, "device": args.device, **settings.as_dict()}
    with tracking.tracked_run(args, f"mlp-{settings.backend}", params=params, inputs={"mnist": args.data},
                              tags={"mlnb.model": "backprop"}) as tracker:
        def log_epoch(record):
            tracker.log_metrics({key: record[key] for key in ("train_error", "test_accuracy", "seconds",
                                                              "train_images_per_second")}, step=record["step"])

        net, records, predictions, seconds = train(settings, data, args.seed, args.device, on_epoch=log_epoch)
        counts = confusion_matrix(data.y_test, predictions, settings.layers[-1])
        timed = ("seconds", "train_images_per_second")
        timing = {"train_seconds": seconds, "train_images_per_second": settings.epochs * len(data.y_train) / seconds,
                  "epochs": [{key: record[key] for key in ("epoch", *timed)} for record in records]}
        result = {
            "seed": args.seed, "settings": settings.as_dict(), "device": str(array_api_compat.device(net.weights[0])),
            "train_images": len(data.y_train), "test_images": len(data.y_test),
            "test_accuracy": records[-1]["test_accuracy"],
            "epochs": [{key: value for key, value in record.items() if key not in timed} for record in records],
            "confusion_matrix": counts.tolist(),
        }
        args.out.mkdir(parents=True, exist_ok=True)
        net.save(args.out / "model.npz")
        plot_confusion(counts, args.out / "confusion.png")
        grid, wrong = misclassified_grid(data.x_test, data.y_test, predictions)
        with atomic_path(args.out / "misclassified.png") as tmp:
            PIL.Image.fromarray(grid).save(tmp)
        result["misclassified_shown"] = wrong
        with atomic_path(args.out / "result.json") as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n")
        if args.timing is not None:
            with atomic_path(args.timing) as tmp:
                tmp.write_text(json.dumps(timing, indent=2) + "\n")
        tracker.log_metrics({"final_test_accuracy": result["test_accuracy"],
                             "final_train_images_per_second": timing["train_images_per_second"]})
        for name in ("result.json", "model.npz", "confusion.png", "misclassified.png"):
            tracker.log_artifact(args.out / name)
    print(f"MLP {'-'.join(map(str, settings.layers))}: test accuracy {result['test_accuracy']:.4f} "
          f"after {settings.epochs} epoch(s), {timing['train_images_per_second']:.0f} training images/s "
          f"({settings.backend}, {result['device']})")
    return 0
