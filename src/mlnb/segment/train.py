"""Train the 3-D U-Net of one (arm, fold), predict its held-out cases and measure them: :func:`train_fold`
(the command line: ``mlnb train-segment``, :mod:`mlnb.segment.train_cli`).

Every arm trains the same network from the same initial weights (drawn from (seed, "segment", fold)) for
the same steps on the same patch draws; only the augmentation differs: ``none`` trains on the fold's
training cases as they are, ``offline`` on those and the augment stage's saved copies of them (a copy of
a held-out case never trains), ``onthefly`` and the single-transform arms on the training cases with the
augment section's random policy (or one of its transforms) applied on the device to every patch.

It writes into ``options.out``: ``predictions/<case>.nii.gz`` (each held-out case's label map on its
original grid, with its image's affine and header), ``previews/<case>.png`` (image, truth, prediction),
``metrics.json`` (Dice and HD95 per held-out case and their means, the split, the run's figures) and
``model.pt`` (the U-Net's state dict). The same go to one MLflow run ``segment-<arm>-fold<k>`` with the
loss and training Dice per step, the validation Dice at intervals and the network as an MLflow PyTorch
model. Checkpoints go to ``options.checkpoint_dir`` (default ``results/checkpoints/segment/<arm>-fold<k>``);
a stopped job checkpoints and exits 128 + signal, and the same command resumes it. Data-parallel under
``torchrun``: every process draws the step's global batch and trains on its slice of it.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from mlnb.augment.settings import AugmentSettings
from mlnb.errors import ConfigError, DataError
from mlnb.io import atomic_path, file_md5
from mlnb.segment import folds as fold_files
from mlnb.segment.inference import sliding_window, to_original, write_prediction
from mlnb.segment.losses import dice_ce_loss, hard_dice
from mlnb.segment.metrics import case_metrics
from mlnb.segment.network import UNet3D, plan_levels
from mlnb.segment.onthefly import OnTheFly
from mlnb.segment.overlay import overlay_panels
from mlnb.segment.patches import DeviceCases, PatchSampler
from mlnb.segment.preprocess import IMAGES, INDEX, Pack, Source, load_volume
from mlnb.segment.settings import SegmentSettings, arm_policy, check_arm
from mlnb.stopping import cooperative_stop
from mlnb.training.checkpoint import Checkpointer
from mlnb.training.device import DeviceSetup, build_model, maybe_compile, torch_threads
from mlnb.training.distributed import World, launched_world, main_run, process_group
from mlnb.training.loop import Hook, TrainingLoop
from mlnb.training.options import RunOptions
from mlnb.training.outputs import fingerprint, save_state_dict, write_json
from mlnb.training.settings import TrainSettings

log = logging.getLogger(__name__)

#: share of foreground-centred patches among the fixed validation patches
VALIDATION_FOREGROUND_SHARE = 0.5
#: exponent of the polynomial learning-rate decay (nnU-Net's)
POLY_POWER = 0.9


def run_name(arm: str, fold: int) -> str:
    return f"segment-{arm}-fold{fold}"


@dataclasses.dataclass(frozen=True)
class FoldData:
    """The packs a fold trains on and its split."""

    packs: list[Pack]
    train_cases: list[str]
    test_cases: list[str]
    labels: int
    spacing: tuple[float, float, float]


def fold_data(arm: str, fold: int, options: RunOptions, folds_file: Path, copies: Path | None) -> FoldData:
    """The originals' pack (and the copies' for ``offline``), the fold's training and held-out cases."""
    pack = Pack.load(options.data)
    training, held_out = fold_files.split(fold_files.read_folds(folds_file), fold, folds_file)
    unknown = sorted(set(training + held_out) - set(pack.names))
    if unknown or len(training) + len(held_out) != len(pack.names):
        raise DataError(f"{folds_file}: its cases differ from the pack {options.data}'s "
                        f"(not in the pack: {unknown or 'none'}); prepare both from the same index")
    packs, train_cases = [pack], list(training)
    if arm == "offline":
        if copies is None:
            raise ConfigError("segment arm offline trains on the augment stage's copies: give --copies (their pack)")
        copy_pack = Pack.load(copies)
        if not np.allclose(copy_pack.index["spacing"], pack.index["spacing"]):
            raise DataError(f"{copies}: spacing {copy_pack.index['spacing']} differs from {options.data}'s "
                            f"{pack.index['spacing']} (prepare the copies with --like {options.data})")
        packs.append(copy_pack)
        train_cases += [case["case"] for case in copy_pack.cases if case["origin"] in training]
    values = pack.index["labels"]
    if values != list(range(len(values))) or len(values) < 2:
        raise DataError(f"{options.data / INDEX}: labels {values}: expected 0, 1, ... with a foreground label")
    return FoldData(packs, train_cases, held_out, len(values), tuple(pack.index["spacing"]))


def train_fold(arm: str, fold: int, settings: SegmentSettings, augment: AugmentSettings, train: TrainSettings,
               options: RunOptions, folds_file: Path, copies: Path | None = None) -> dict[str, Any] | None:
    """Train arm ``arm`` on fold ``fold`` (0-based) of ``folds_file`` over the pack ``options.data``, predict
    and measure the held-out cases; in this process or, under torchrun, data-parallel with the job's others.

    Returns the metrics (also ``metrics.json``) on rank 0, None in the other processes.
    """
    check_arm(arm)
    world = launched_world()
    setup = train.device_setup(world)
    with process_group(world, setup.device) as world, torch_threads(world.threads(train.threads)):
        return train_process(arm, fold, settings, augment, train, options, folds_file, copies, setup, world)


def checkpoint_fingerprint(arm: str, fold: int, settings: SegmentSettings, augment: AugmentSettings,
                           train: TrainSettings, seed: int, setup: DeviceSetup, data_md5: dict[str, str]) -> str:
    """What shapes the run: the defining settings (the arm list aside; the augment section only for the arms
    that use it), the arm, fold, seed, number formats and the packs' checksums."""
    uses_policy = arm_policy(arm, augment.policy()) is not None
    return fingerprint(arm=arm, fold=fold, settings=defining(settings), train=train.defining(), seed=seed,
                       augment=augment.defining() if uses_policy else None, device=setup.device.type,
                       bf16=setup.bf16, channels_last=setup.channels_last, data=data_md5)


def defining(settings: SegmentSettings) -> dict[str, Any]:
    """The settings that shape one (arm, fold): all defining keys but the list of arms."""
    return {key: value for key, value in settings.defining().items() if key != "arms"}


def as_input(images: torch.Tensor, setup: DeviceSetup) -> torch.Tensor:
    """(B, S, R, C) patches -> (B, 1, S, R, C) network input, channels_last_3d when the setup asks for it."""
    batch = images[:, None].float()
    return batch.contiguous(memory_format=torch.channels_last_3d) if setup.channels_last else batch


def build_unet(levels, labels: int, setup: DeviceSetup, seed: int, fold: int) -> UNet3D:
    """The U-Net with weights drawn from (seed, "segment", fold): the same for every arm of a fold."""
    model = build_model(lambda: UNet3D(levels, labels), dataclasses.replace(setup, channels_last=False), seed,
                        "segment", fold)
    return model.to(memory_format=torch.channels_last_3d) if setup.channels_last else model


def train_process(arm: str, fold: int, settings: SegmentSettings, augment: AugmentSettings, train: TrainSettings,
                  options: RunOptions, folds_file: Path, copies: Path | None, setup: DeviceSetup,
                  world: World) -> dict[str, Any] | None:
    """This process's part of :func:`train_fold` (the steps below, in order)."""
    seed, name = options.seed, run_name(arm, fold)
    world.check_divisible(settings.batch_size, "segment.batch_size")
    # 1. data on the device, once; the augmentation this arm applies
    data = fold_data(arm, fold, options, folds_file, copies)
    policy = arm_policy(arm, augment.policy())
    onthefly = None if policy is None else OnTheFly(policy, augment.order, settings.patch_size, seed, fold)
    source = settings.patch_size if onthefly is None else onthefly.source
    cases = DeviceCases(data.packs, data.train_cases, source, setup.device)
    sampler = PatchSampler(cases, source, settings.batch_size, settings.foreground_share, seed, fold)
    held_out = DeviceCases(data.packs[:1], data.test_cases, settings.patch_size, setup.device)
    validation = PatchSampler(held_out, settings.patch_size, settings.validation_patches,
                              VALIDATION_FOREGROUND_SHARE, seed, fold, "validation")
    validation_images, validation_labels = validation.patches(validation.draw(1))

    # 2. network, optimizer and schedule; restored from a checkpoint when there is one
    levels = plan_levels(settings.patch_size, data.spacing, settings.depth, settings.base_width)
    model = build_unet(levels, data.labels, setup, seed, fold)
    network = maybe_compile(world.wrap(model, setup.device), settings.compile)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda done: max(0.0, 1 - done / settings.steps) ** POLY_POWER)
    data_md5 = {f"{pack.folder.name}/{IMAGES}": file_md5(pack.folder / IMAGES) for pack in data.packs}
    data_md5.update({f"{pack.folder.name}/{INDEX}": file_md5(pack.folder / INDEX) for pack in data.packs})
    checkpointer = Checkpointer(
        options.checkpoints("segment", f"{arm}-fold{fold}"),
        fingerprint=checkpoint_fingerprint(arm, fold, settings, augment, train, seed, setup, data_md5),
        models={"unet": model}, optimizers={"unet": optimizer}, schedulers={"unet": schedule})
    resumed = checkpointer.restore(setup.device)

    def train_step(step: int) -> dict[str, torch.Tensor]:
        draw = sampler.draw(step)
        slots = world.shard(torch.arange(settings.batch_size)).tolist()  # this process's places in the batch
        images, labels = cases.crop(draw.device_cases[slots], draw.starts[slots], source)
        if onthefly is not None:
            images, labels = onthefly(images, labels, [cases.names[case] for case in draw.cases[slots]], step,
                                      slots)
        with setup.autocast():
            logits = network(as_input(images, setup))
        loss = dice_ce_loss(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        return {"loss": loss.detach(), "train_dice": hard_dice(logits.detach(), labels)}

    def validation_hook(step: int, loop: TrainingLoop) -> dict[str, float]:
        logits = predict_batches(model, validation_images, settings.inference_batch, setup)
        return {"validation_dice": float(hard_dice(logits, validation_labels))}

    # 3. the steps, in the same MLflow run as before a stop
    params = {"arm": arm, "fold": fold, **defining(settings), "seed": seed, "train": train.defining(),
              "augment": augment.defining() if policy is not None else None, "train_cases": data.train_cases,
              "test_cases": data.test_cases, "spacing": list(data.spacing), "source_patch": list(source),
              "levels": [dataclasses.asdict(level) for level in levels]}
    tags = {"mlnb.rule": options.rule, "mlnb.model": "segment", "mlnb.arm": arm, "mlnb.fold": fold}
    with main_run(world, options.tracking, name, params=params, run_id=resumed.run_id if resumed else None,
                  inputs={"pack": options.data / INDEX, "folds": folds_file}, tags=tags) as tracker:
        log.info("%s on %s (process %d of %d): %d training cases, %d held out, patches %s (cut %s), %d steps "
                 "of %d", name, setup.describe(), world.rank + 1, world.size, len(cases), len(held_out),
                 list(settings.patch_size), list(source), settings.steps, settings.batch_size)
        with cooperative_stop() as stop:
            loop = TrainingLoop(total_steps=settings.steps, images_per_step=settings.batch_size,
                                log_every=train.log_every, checkpoint_every=train.checkpoint_every,
                                checkpointer=checkpointer, tracker=tracker, device=setup.device, stop=stop,
                                hooks=(Hook(settings.validation_every, validation_hook),), description=name,
                                world=world)
            result = loop.run(train_step, resumed)
        if not world.is_main:
            return None

        # 4. the held-out cases predicted whole, measured, written and logged
        measured = predict_held_out(model, data, settings, setup, options.out, tracker)
        metrics = {"arm": arm, "fold": fold, "seed": seed, "steps": result.steps, "settings": defining(settings),
                   "train_cases": data.train_cases, "test_cases": data.test_cases, "cases": measured,
                   "dice": float(np.mean([case["dice"] for case in measured.values()])),
                   "hd95": float(np.mean([case["hd95"] for case in measured.values()])),
                   "last_metrics": result.last_metrics}
        write_json(options.out / "metrics.json", metrics)
        tracker.log_artifact(options.out / "metrics.json")
        tracker.log_metrics({"test_dice": metrics["dice"], "test_hd95": metrics["hd95"]}, step=result.steps)
        save_state_dict(model, options.out / "model.pt")
        example = np.zeros((1, 1, *(2 * stride for stride in model.stride)), np.float32)
        tracker.log_pytorch_model(model, "model", input_example=example,
                                  pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
        timing = {"run": name, "device": setup.describe(), "steps": result.steps,
                  "train_seconds": result.train_seconds,
                  "steps_per_second": result.steps / result.train_seconds if result.train_seconds else 0.0}
        tracker.log_metrics({"train_seconds": timing["train_seconds"],
                             "steps_per_second": timing["steps_per_second"]}, step=result.steps)
        if options.timing:
            write_json(options.timing, timing)
        log.info("%s: held-out Dice %.4f, HD95 %.2f mm (%.2f steps/s)", name, metrics["dice"], metrics["hd95"],
                 timing["steps_per_second"])
    checkpointer.finish()
    return metrics


@torch.no_grad()
def predict_batches(model: torch.nn.Module, images: torch.Tensor, batch: int, setup: DeviceSetup) -> torch.Tensor:
    """Logits of (N, S, R, C) patches, ``batch`` at a time, in eval mode (the model is left in train mode)."""
    model.eval()
    try:
        parts = []
        for first in range(0, len(images), batch):
            with setup.autocast():
                parts.append(model(as_input(images[first:first + batch], setup)).float())
        return torch.cat(parts)
    finally:
        model.train()


def predict_held_out(model: torch.nn.Module, data: FoldData, settings: SegmentSettings, setup: DeviceSetup,
                     out: Path, tracker) -> dict[str, dict[str, Any]]:
    """Each held-out case predicted whole, written as NIfTI beside a preview, and measured on its original grid."""
    pack = data.packs[0]
    measured = {}
    for name in data.test_cases:
        case = pack.case(name)
        image, _ = pack.arrays(name)
        probabilities = sliding_window(lambda windows: predict_batches(model, windows, len(windows), setup),
                                       torch.from_numpy(image).to(setup.device), settings.patch_size,
                                       settings.overlap, data.labels, settings.inference_batch)
        predicted = to_original(probabilities, case)
        prediction_path = out / "predictions" / f"{name}.nii.gz"
        write_prediction(predicted, case["image"], prediction_path)
        truth = load_volume(Source(name, name, Path(case["image"]), Path(case["label"])))
        scores = case_metrics(predicted, truth.labels, truth.spacing, range(data.labels))
        measured[name] = {**scores, "prediction": str(prediction_path), "image": case["image"],
                          "label": case["label"]}
        preview = overlay_panels(truth.image, [truth.labels, predicted], ["truth", "prediction"],
                                 f"{name}: Dice {scores['dice']:.3f}")
        with atomic_path(out / "previews" / f"{name}.png") as tmp:
            Image.fromarray(preview).save(tmp, format="PNG")
        tracker.log_image(preview, f"previews/{name}.png")
        tracker.log_metrics({f"test_dice.{name}": scores["dice"], f"test_hd95.{name}": scores["hd95"]})
    return measured
