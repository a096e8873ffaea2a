"""Train one variant of the blog's MNIST CNN ladder, resumably, tracked in MLflow (``mlnb train-cnn``:
:mod:`mlnb.cnn.train_cli`).

:func:`train_cnn` writes ``result.json`` (settings, test accuracy and loss, confusion matrix: the same bytes
for the same settings, seed and device) and ``model.pt`` (the weights, a state dict to load with
``weights_only=True``) into the run's ``out``; its ``timing`` file gets the wall times (training time, images/s,
time to ``cnn.target_accuracy``), which vary from run to run and so stay out of ``out``. A stopped run (SIGTERM,
SIGINT, SIGUSR1) checkpoints and raises :class:`mlnb.stopping.Stopped`; the same call resumes it: same step
count, optimizer, RNG and MLflow run. Under torchrun every process trains on its shard of each batch
(:mod:`mlnb.training.distributed`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mlnb.cnn.network import NUM_CLASSES, BlogCNN
from mlnb.cnn.settings import CnnSettings, CnnVariant
from mlnb.data.mnist import MnistArrays, read_mnist_npz
from mlnb.io import file_md5
from mlnb.stopping import cooperative_stop
from mlnb.training import figures
from mlnb.training.checkpoint import Checkpointer
from mlnb.training.data import DeviceDataset, EpochBatches
from mlnb.training.device import DeviceSetup, build_model, generator, maybe_compile, torch_threads
from mlnb.training.distributed import World, launched_world, main_run, process_group
from mlnb.training.loop import Hook, TrainingLoop
from mlnb.training.options import RunOptions
from mlnb.training.outputs import fingerprint, save_state_dict, write_json
from mlnb.training.settings import TrainSettings

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Evaluation:
    accuracy: float
    loss: float
    predictions: np.ndarray


def make_optimizer(variant: CnnVariant, model: torch.nn.Module, setup: DeviceSetup) -> torch.optim.Optimizer:
    if variant.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=variant.learning_rate, momentum=variant.momentum,
                               weight_decay=variant.weight_decay)
    # AdamW with weight_decay 0 is Adam; the fused kernel is CUDA's fastest
    return torch.optim.AdamW(model.parameters(), lr=variant.learning_rate, weight_decay=variant.weight_decay,
                             fused=setup.device.type == "cuda")


def make_scheduler(variant: CnnVariant, optimizer: torch.optim.Optimizer):
    if variant.schedule == "constant":
        return None
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=variant.learning_rate, total_steps=variant.steps)


@torch.no_grad()
def evaluate(model: torch.nn.Module, test: DeviceDataset, setup: DeviceSetup, batch_size: int) -> Evaluation:
    model.eval()
    loss, predictions = torch.zeros((), device=setup.device), []
    for images, labels in test.chunks(batch_size):
        with setup.autocast():
            logits = model(images)
        loss += F.cross_entropy(logits.float(), labels, reduction="sum")
        predictions.append(logits.argmax(1))
    model.train()
    predicted = torch.cat(predictions)
    correct = int((predicted == test.labels).sum())
    return Evaluation(accuracy=correct / len(test), loss=float(loss) / len(test), predictions=predicted.cpu().numpy())


def run_fingerprint(name: str, settings: CnnSettings, train: TrainSettings, seed: int, setup: DeviceSetup,
                    data_md5: str) -> str:
    """What shapes the run (every setting but the operational ones, the device as set up, the data): a
    checkpoint with another fingerprint is not resumed."""
    return fingerprint(cnn=settings.defining_for(name), train=train.defining(), seed=seed, device=setup.device.type,
                       bf16=setup.bf16, channels_last=setup.channels_last, data_md5=data_md5)


def train_cnn(name: str, settings: CnnSettings, train: TrainSettings, options: RunOptions) -> dict[str, Any] | None:
    """Train variant ``name`` of ``settings`` on ``options.data`` into ``options.out``, as one process or as
    one of torchrun's; the summary written to ``result.json`` (on rank 0; None on the others)."""
    began = time.perf_counter()
    variant = settings.variant(name)
    world = launched_world()
    setup = train.device_setup(world)
    with process_group(world, setup.device) as world, torch_threads(world.threads(train.threads)):
        return train_variant(name, variant, settings, train, options, began, setup, world)


def train_variant(name: str, variant: CnnVariant, settings: CnnSettings, train: TrainSettings, options: RunOptions,
                  began: float, setup: DeviceSetup, world: World) -> dict[str, Any] | None:
    """Build, restore, train, evaluate, write and log one variant (the steps below, in order).

    In a data-parallel job every process trains on its shard of each batch; rank 0 alone evaluates,
    logs and writes, and returns the summary (the others None).
    """
    # 1. data on the device, once
    world.check_divisible(variant.batch_size, f"cnn.variants.{name}.batch_size")
    arrays = read_mnist_npz(options.data)
    train_data = DeviceDataset(arrays.x_train, arrays.y_train, setup, num_classes=NUM_CLASSES,
                               origin=f"{options.data} train")
    test_data = DeviceDataset(arrays.x_test, arrays.y_test, setup, num_classes=NUM_CLASSES,
                              origin=f"{options.data} test")
    batches = EpochBatches(len(train_data), variant.batch_size, setup, options.seed, "cnn", name)

    # 2. model, optimizer, schedule, dropout generator; restored from a checkpoint when there is one
    dropout_generator = generator(setup, options.seed, "cnn", name, "dropout")
    model = build_model(lambda: BlogCNN(batch_norm=variant.batch_norm, batch_norm_decay=variant.batch_norm_decay,
                                        dropout=variant.dropout, dropout_generator=dropout_generator,
                                        dropout_shard=(world.rank, world.size)),
                        setup, options.seed, "cnn", name)
    optimizer = make_optimizer(variant, model, setup)
    scheduler = make_scheduler(variant, optimizer)
    checkpointer = Checkpointer(
        options.checkpoints("cnn", name),
        fingerprint=run_fingerprint(name, settings, train, options.seed, setup, file_md5(options.data)),
        models={"cnn": model}, optimizers={"optimizer": optimizer},
        schedulers={"schedule": scheduler} if scheduler else {}, generators={"dropout": dropout_generator},
        writer=world.is_main)
    resumed = checkpointer.restore(setup.device)
    evaluations = list(resumed.extra.get("evaluations", [])) if resumed else []
    network = maybe_compile(world.wrap(model, setup.device), variant.compile)

    def train_step(step: int) -> dict[str, torch.Tensor]:
        images, labels = train_data.batch(world.shard(batches.indices(step)))
        with setup.autocast():
            logits = network(images)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=variant.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        learning_rate = optimizer.param_groups[0]["lr"]
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        accuracy = (logits.detach().argmax(1) == labels).float().mean()
        return {"train_loss": loss.detach(), "train_accuracy": accuracy,
                "learning_rate": torch.tensor(float(learning_rate))}

    def timed_evaluation(step: int, loop: TrainingLoop) -> dict[str, float]:
        evaluation = evaluate(model, test_data, setup, settings.eval_batch)
        evaluations.append({"step": step, "train_seconds": loop.train_seconds, "test_accuracy": evaluation.accuracy})
        return {"test_accuracy": evaluation.accuracy, "test_loss": evaluation.loss}

    # 3. the steps, in the same MLflow run as before the stop
    params = {"variant": name, **dataclasses.asdict(variant), "seed": options.seed,
              "eval_batch": settings.eval_batch, "train_images": len(train_data), "test_images": len(test_data),
              "train": train.defining()}
    tags = {"mlnb.rule": options.rule, "mlnb.model": "cnn", "mlnb.variant": name}
    with main_run(world, options.tracking, f"cnn-{name}", params=params, run_id=resumed.run_id if resumed else None,
                  inputs={"mnist": options.data}, tags=tags) as tracker:
        log.info("cnn-%s on %s (process %d of %d): %d train, %d test digits, %d steps of %d", name,
                 setup.describe(), world.rank + 1, world.size, len(train_data), len(test_data), variant.steps,
                 variant.batch_size)
        hooks = (Hook(variant.eval_every, timed_evaluation),) if variant.eval_every else ()
        with cooperative_stop() as stop:
            loop = TrainingLoop(total_steps=variant.steps, images_per_step=variant.batch_size,
                                log_every=train.log_every, checkpoint_every=train.checkpoint_every,
                                checkpointer=checkpointer, tracker=tracker, device=setup.device, stop=stop,
                                hooks=hooks, extra={"evaluations": evaluations}, description=f"cnn-{name}",
                                world=world)
            result = loop.run(train_step, resumed)
        if not world.is_main:
            return None

        # 4. final evaluation, outputs, and what the run logs about them
        final = evaluate(model, test_data, setup, settings.eval_batch)
        if not variant.eval_every:
            tracker.log_metrics({"test_accuracy": final.accuracy, "test_loss": final.loss}, step=variant.steps)
        confusion = figures.confusion_counts(arrays.y_test, final.predictions, NUM_CLASSES)
        summary = {
            "model": "cnn", "variant": name, "settings": dataclasses.asdict(variant), "seed": options.seed,
            "device": setup.device.type, "train_images": len(train_data), "test_images": len(test_data),
            "epochs": variant.steps * variant.batch_size / len(train_data),
            "test_accuracy": final.accuracy, "test_loss": final.loss,
            "train_loss": result.last_metrics.get("train_loss"), "confusion": confusion.tolist(),
        }
        save_state_dict(model, options.out / "model.pt")
        write_json(options.out / "result.json", summary)
        timing = timing_record(name, setup, result, evaluations, settings.target_accuracy, began)
        if options.timing:
            write_json(options.timing, timing)
        timed = ("train_seconds", "images_per_second", "wall_seconds", "time_to_target_seconds")
        tracker.log_metrics({key: timing[key] for key in timed if timing[key] is not None}, step=variant.steps)
        log_results(tracker, options.out, name, arrays, final, confusion)
        # what mlflow.pytorch.load_model gives back takes what evaluate() feeds: N x 1 x 28 x 28 in [0, 1]
        tracker.log_pytorch_model(model, "cnn", input_example=arrays.x_test[:2, None].astype(np.float32) / 255)
    checkpointer.finish()
    return summary


def timing_record(name: str, setup: DeviceSetup, result, evaluations: list[dict], target: float,
                  began: float) -> dict[str, Any]:
    reached = next((entry for entry in evaluations if entry["test_accuracy"] >= target), None)
    return {"variant": name, "device": setup.describe(), "train_seconds": result.train_seconds,
            "images_per_second": result.images_per_second, "wall_seconds": time.perf_counter() - began,
            "target_accuracy": target, "evaluations": evaluations,
            "time_to_target_seconds": None if reached is None else reached["train_seconds"],
            "steps_to_target": None if reached is None else reached["step"]}


def log_results(tracker, out: Path, name: str, arrays: MnistArrays, final: Evaluation, confusion: np.ndarray) -> None:
    """The model, the result, and (only for a tracked run) the figures."""
    if not tracker.active:
        return
    tracker.log_artifact(out / "model.pt", "model")
    tracker.log_artifact(out / "result.json")
    title = f"cnn-{name}: test accuracy {final.accuracy:.4f}"
    tracker.log_image(figures.figure_image(figures.confusion_figure(confusion, title)), "figures/confusion_matrix.png")
    grid, shown = figures.misclassified_grid(arrays.x_test, arrays.y_test, final.predictions)
    if shown:
        tracker.log_image(grid, "figures/misclassified.png")
        tracker.log_dict({"misclassified": shown}, "figures/misclassified.json")
