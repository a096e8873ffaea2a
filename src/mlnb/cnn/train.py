"""``mlnb train-cnn``: train one variant of the blog's MNIST CNN ladder, resumably, tracked in MLflow.

    mlnb train-cnn --data results/data/mnist/mnist.npz --variant adam-1000 --settings config.yaml \\
        --out results/train/cnn/adam-1000 [--steps 50 ...] [--device cpu ...]

writes ``OUT/result.json`` (settings, test accuracy and loss, confusion matrix: the
same bytes for the same config, seed and device) and ``OUT/model.pt`` (the weights,
a state dict to load with ``weights_only=True``); ``--timing FILE`` gets the wall
times (training time, images/s, time to ``cnn.target_accuracy``), which vary from
run to run and so stay out of OUT. Checkpoints go to ``--checkpoint-dir``; a
stopped job (SIGTERM, SIGINT, SIGUSR1) checkpoints, exits 128 + signal, and the
same command resumes it: same step count, optimizer, RNG and MLflow run.

Data-parallel on N GPUs (or CPU processes): ``torchrun --standalone --nproc-per-node N --no-python
mlnb train-cnn ...`` (what the rule runs for ``train.processes`` N; see :mod:`mlnb.training.distributed`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mlnb import tracking
from mlnb.data.mnist import MnistArrays, read_mnist_npz
from mlnb.errors import ConfigError
from mlnb.io import atomic_path, file_md5
from mlnb.cnn.network import NUM_CLASSES, BlogCNN
from mlnb.settings import (Settings, add_schema_flags, config_schema, read_section, schema_flag_values)
from mlnb.stopping import cooperative_stop
from mlnb.training.checkpoint import Checkpointer, checkpoint_folder
from mlnb.training.data import DeviceDataset, EpochBatches
from mlnb.training.device import DeviceSetup, build_model, generator, maybe_compile, torch_threads
from mlnb.training.distributed import World, launched_world, main_run, process_group
from mlnb.training.loop import Hook, TrainingLoop
from mlnb.training.settings import TrainSettings, add_train_arguments, train_settings_from_args

log = logging.getLogger(__name__)

VARIANT_FLAGS = "variant."
#: train keys that change how a job runs, not what it makes: not logged, so a resumed run may change them
OPERATIONAL = {"threads", "checkpoint_every"}


@dataclasses.dataclass(frozen=True)
class CnnVariant:
    """One rung of the ladder (schema: definitions.cnn_variant)."""

    steps: int
    batch_size: int
    optimizer: str
    learning_rate: float
    momentum: float
    weight_decay: float
    schedule: str
    batch_norm: bool
    batch_norm_decay: float
    dropout: float
    label_smoothing: float
    compile: bool
    eval_every: int


@dataclasses.dataclass(frozen=True)
class CnnSettings(Settings):
    section = "cnn"

    variants: dict
    eval_batch: int
    target_accuracy: float
    blog_accuracy: dict

    def variant(self, name: str) -> CnnVariant:
        if name not in self.variants:
            known = ", ".join(sorted(self.variants)) or "none"
            raise ConfigError(f"cnn.variants: no variant {name!r} (configured: {known})")
        return CnnVariant(**self.variants[name])


@dataclasses.dataclass
class Evaluation:
    accuracy: float
    loss: float
    confusion: np.ndarray  # true x predicted counts
    predictions: np.ndarray


def configure_parser(parser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="MNIST .npz from prepare-mnist")
    parser.add_argument("--variant", required=True, help="name of the variant in cnn.variants")
    parser.add_argument("--seed", type=int, default=0, help="master seed (weights, batches, dropout)")
    parser.add_argument("--out", type=Path, required=True, help="folder for result.json and model.pt")
    parser.add_argument("--timing", type=Path, help="JSON file for the wall times (kept out of --out)")
    parser.add_argument("--rule", default="by-hand", help="the Snakemake rule running it (an MLflow tag)")
    parser.add_argument("--checkpoint-dir", type=Path,
                        help="checkpoint folder (default: results/checkpoints/cnn/<variant>)")
    cnn = parser.add_argument_group("cnn settings (defaults: config.schema.yaml)")
    cnn.add_argument("--settings", metavar="JSON|FILE",
                     help="the cnn config section as JSON, or a YAML/JSON file with it (or a whole config)")
    add_schema_flags(cnn, config_schema()["definitions"]["cnn_variant"]["properties"], VARIANT_FLAGS)
    add_train_arguments(parser)
    tracking.add_tracking_arguments(parser)


def cnn_settings_from_args(args) -> CnnSettings:
    """The cnn section from ``--settings``, with the variant flags (``--steps`` ...) applied to ``--variant``."""
    mapping, origin = read_section("cnn", args.settings) if args.settings else ({}, "command line")
    names = config_schema()["definitions"]["cnn_variant"]["properties"]
    overrides = schema_flag_values(args, names, VARIANT_FLAGS)
    if overrides:
        variants = dict(mapping.get("variants") or {})
        variants[args.variant] = {**variants.get(args.variant, {}), **overrides}
        mapping = {**mapping, "variants": variants}
    return CnnSettings.from_mapping(mapping, origin)


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
    confusion = torch.bincount(test.labels * NUM_CLASSES + predicted, minlength=NUM_CLASSES ** 2)
    correct = int((predicted == test.labels).sum())
    return Evaluation(accuracy=correct / len(test), loss=float(loss) / len(test),
                      confusion=confusion.reshape(NUM_CLASSES, NUM_CLASSES).cpu().numpy(),
                      predictions=predicted.cpu().numpy())


def fingerprint(name: str, variant: CnnVariant, seed: int, setup: DeviceSetup, data_md5: str) -> str:
    """What shapes the run: a checkpoint with another fingerprint is not resumed."""
    shape = {"variant": name, "settings": dataclasses.asdict(variant), "seed": seed, "device": setup.device.type,
             "bf16": setup.bf16, "channels_last": setup.channels_last, "data_md5": data_md5}
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()


def write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def run(args) -> int:
    began = time.perf_counter()
    settings, train = cnn_settings_from_args(args), train_settings_from_args(args)
    variant = settings.variant(args.variant)
    world = launched_world()
    setup = train.device_setup(world)
    with process_group(world, setup.device) as world, torch_threads(world.threads(train.threads)):
        summary = train_variant(args, args.variant, variant, settings, train, began, setup, world)
    if summary is None:  # not rank 0 of a data-parallel job
        return 0
    print(f"cnn-{args.variant}: test accuracy {summary['test_accuracy']:.4f} after {variant.steps} steps "
          f"-> {args.out}")
    return 0


def train_variant(args, name: str, variant: CnnVariant, settings: CnnSettings, train: TrainSettings,
                  began: float, setup: DeviceSetup, world: World = World()) -> dict[str, Any] | None:
    """Build, restore, train, evaluate, write and log one variant (the steps below, in order).

    In a data-parallel job every process trains on its shard of each batch; rank 0 alone evaluates,
    logs and writes, and returns the summary (the others None).
    """
    # 1. data on the device, once
    world.check_divisible(variant.batch_size, f"cnn.variants.{name}.batch_size")
    arrays = read_mnist_npz(args.data)
    train_data = DeviceDataset(arrays.x_train, arrays.y_train, setup, num_classes=NUM_CLASSES,
                               origin=f"{args.data} train")
    test_data = DeviceDataset(arrays.x_test, arrays.y_test, setup, num_classes=NUM_CLASSES,
                              origin=f"{args.data} test")
    batches = EpochBatches(len(train_data), variant.batch_size, setup, args.seed, "cnn", name)

    # 2. model, optimizer, schedule, dropout generator; restored from a checkpoint when there is one
    dropout_generator = generator(setup, args.seed, "cnn", name, "dropout")
    model = build_model(lambda: BlogCNN(batch_norm=variant.batch_norm, batch_norm_decay=variant.batch_norm_decay,
                                        dropout=variant.dropout, dropout_generator=dropout_generator,
                                        dropout_shard=(world.rank, world.size)),
                        setup, args.seed, "cnn", name)
    optimizer = make_optimizer(variant, model, setup)
    scheduler = make_scheduler(variant, optimizer)
    checkpointer = Checkpointer(
        args.checkpoint_dir or checkpoint_folder("cnn", name),
        fingerprint=fingerprint(name, variant, args.seed, setup, file_md5(args.data)),
        models={"cnn": model}, optimizers={"optimizer": optimizer},
        schedulers={"schedule": scheduler} if scheduler else {}, generators={"dropout": dropout_generator})
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
    params = {"variant": name, **dataclasses.asdict(variant), "seed": args.seed, "eval_batch": settings.eval_batch,
              "train_images": len(train_data), "test_images": len(test_data),
              "train": {key: value for key, value in train.as_dict().items() if key not in OPERATIONAL}}
    tags = {"mlnb.rule": args.rule, "mlnb.model": "cnn", "mlnb.variant": name}
    with main_run(world, args, f"cnn-{name}", params=params, run_id=resumed.run_id if resumed else None,
                  inputs={"mnist": args.data}, tags=tags) as tracker:
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
        summary = {
            "model": "cnn", "variant": name, "settings": dataclasses.asdict(variant), "seed": args.seed,
            "device": setup.device.type, "train_images": len(train_data), "test_images": len(test_data),
            "epochs": variant.steps * variant.batch_size / len(train_data),
            "test_accuracy": final.accuracy, "test_loss": final.loss,
            "train_loss": result.last_metrics.get("train_loss"), "confusion": final.confusion.tolist(),
        }
        write_outputs(args, model, summary)
        timing = timing_record(name, setup, result, evaluations, settings.target_accuracy, began)
        if args.timing:
            write_json(args.timing, timing)
        timed = ("train_seconds", "images_per_second", "wall_seconds", "time_to_target_seconds")
        tracker.log_metrics({key: timing[key] for key in timed if timing[key] is not None}, step=variant.steps)
        log_results(tracker, args, name, arrays, final)
    checkpointer.finish()
    return summary


def write_outputs(args, model: torch.nn.Module, summary: dict[str, Any]) -> None:
    # saved through a handle: torch.save names the archive after a path (here a random temporary one)
    with atomic_path(args.out / "model.pt") as tmp, open(tmp, "wb") as handle:
        torch.save({key: value.cpu() for key, value in model.state_dict().items()}, handle)
    write_json(args.out / "result.json", summary)


def timing_record(name: str, setup: DeviceSetup, result, evaluations: list[dict], target: float,
                  began: float) -> dict[str, Any]:
    reached = next((entry for entry in evaluations if entry["test_accuracy"] >= target), None)
    return {"variant": name, "device": setup.describe(), "train_seconds": result.train_seconds,
            "images_per_second": result.images_per_second, "wall_seconds": time.perf_counter() - began,
            "target_accuracy": target, "evaluations": evaluations,
            "time_to_target_seconds": None if reached is None else reached["train_seconds"],
            "steps_to_target": None if reached is None else reached["step"]}


def log_results(tracker, args, name: str, arrays: MnistArrays, final: Evaluation) -> None:
    """The model, the result, and (only for a tracked run) the figures."""
    if not tracker.active:
        return
    from mlnb.training.figures import confusion_figure, misclassified_figure

    tracker.log_artifact(args.out / "model.pt", "model")
    tracker.log_artifact(args.out / "result.json")
    title = f"cnn-{name}: test accuracy {final.accuracy:.4f}"
    tracker.log_image(confusion_figure(final.confusion, title), "figures/confusion_matrix.png")
    wrong = misclassified_figure(arrays.x_test, arrays.y_test, final.predictions, f"cnn-{name}: misclassified")
    if wrong is not None:
        tracker.log_image(wrong, "figures/misclassified.png")
