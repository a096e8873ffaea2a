"""Train the blog's DCGAN on packed images, resumably, tracked in MLflow: :func:`train_dcgan`
(the command line: ``mlnb train-dcgan``, :mod:`mlnb.dcgan.train_cli`).

It writes into ``options.out``: ``generator.pt`` (the generator's state dict, ``weights_only``
loadable), ``samples/step_NNNNNNN.png`` (the fixed z's grid every
``sample_every`` steps), ``samples.gif`` (those grids, animated), ``turing.html``
(real and generated images shuffled, click to reveal) and ``summary.json`` (FIDs
with their sample counts, the face-detection rates, the last losses). The same
go to one MLflow run with the metrics (losses, D(x), D(G(z)), FID, all with
``step``) and the generator as the run's model. Checkpoints go to
``options.checkpoint_dir``; a stopped job (SIGTERM, SIGINT, SIGUSR1) checkpoints and
exits 128 + signal, and the same command resumes it: same step count, optimizer
states, RNG states, sample z and MLflow run. Data-parallel on N GPUs: ``torchrun
--standalone --nproc-per-node N --no-python mlnb train-dcgan ...`` (what the rule
runs for ``train.processes`` N; see :mod:`mlnb.training.distributed`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlnb.dcgan.face_rate import face_detection_rate
from mlnb.dcgan.fid import FEATURES, FeatureStats, frechet_distance, inception_features
from mlnb.dcgan.images import load_images
from mlnb.dcgan.network import Discriminator, Generator, sample_z
from mlnb.dcgan.samples import load_png, sample_grid, save_gif, save_png, save_text, to_uint8, turing_page
from mlnb.dcgan.settings import DcganSettings
from mlnb.dcgan.steps import GanSteps
from mlnb.io import file_md5
from mlnb.rng import generator as numpy_generator
from mlnb.rng import torch_generator
from mlnb.stopping import cooperative_stop
from mlnb.training.checkpoint import Checkpointer
from mlnb.training.data import DeviceDataset, EpochBatches
from mlnb.training.device import DeviceSetup, build_model, generator, maybe_compile, torch_threads
from mlnb.training.distributed import World, launched_world, main_run, process_group
from mlnb.training.loop import Hook, TrainingLoop
from mlnb.training.options import RunOptions
from mlnb.training.outputs import fingerprint, save_state_dict, write_json
from mlnb.training.settings import TrainSettings

log = logging.getLogger(__name__)

GENERATE_BATCH = 500


def train_dcgan(dataset: str, settings: DcganSettings, train: TrainSettings, options: RunOptions,
                real_stats: Path, faces: bool = False) -> dict[str, Any] | None:
    """Train one DCGAN on the images ``options.data`` (FIDs against ``real_stats``, dlib's face rate when
    ``faces``), in this process or, under torchrun, data-parallel with the job's others.

    Returns the summary (also ``summary.json``) on rank 0, None in the other processes.
    """
    world = launched_world()
    setup = train.device_setup(world)
    with process_group(world, setup.device) as world, torch_threads(world.threads(train.threads)):
        return train_process(dataset, settings, train, options, real_stats, faces, setup, world)


def checkpoint_fingerprint(settings: DcganSettings, train: TrainSettings, seed: int, setup: DeviceSetup,
                           images_md5: str) -> str:
    """What shapes the run: every setting the schema does not mark operational, the seed, the number formats
    and the images. A checkpoint with another fingerprint is not resumed."""
    return fingerprint(settings=settings.defining(), train=train.defining(), seed=seed, device=setup.device.type,
                       bf16=setup.bf16, channels_last=setup.channels_last, images_md5=images_md5)


def check_points(total_steps: int, checks: int) -> int:
    """Steps between FIDs so that ``checks`` of them are spread over the run (the loop adds the last step)."""
    return max(1, math.ceil(total_steps / checks))


class Evaluator:
    """FID of freshly generated images against the cached real statistics (and a record of each)."""

    def __init__(self, steps: GanSteps, real: FeatureStats, settings: DcganSettings, seed: int, dataset: str,
                 device: torch.device):
        self.steps, self.real, self.count = steps, real, settings.fid_samples
        # one z set for every FID of the run: the scores differ only by the generator
        z_source = torch_generator(seed, "dcgan", dataset, "fid-z")
        self.z = sample_z(self.count, settings.z_dim, z_source).to(device)
        self.images_per_second: float | None = None

    def fid(self) -> float:
        began = time.perf_counter()
        generated = self.steps.generate(self.z, GENERATE_BATCH)
        pixels = torch.from_numpy(to_uint8(generated)).permute(0, 3, 1, 2).to(self.z.device)
        features = FeatureStats.of(inception_features(pixels))
        self.images_per_second = self.count / (time.perf_counter() - began)
        return frechet_distance(features, self.real)


def train_process(name: str, settings: DcganSettings, train: TrainSettings, options: RunOptions,
                  real_stats_path: Path, faces: bool, setup: DeviceSetup, world: World) -> dict[str, Any] | None:
    """This process's part of :func:`train_dcgan`: build, restore, train, measure, write and log (the steps
    below, in order).

    In a data-parallel job every process trains G and D on its shard of each batch (and of its z); rank 0
    alone samples, measures, logs and writes, and returns the summary (the others None).
    """
    seed = options.seed
    # 1. data on the device, once (uint8, scaled to [-1, 1] per batch)
    world.check_divisible(settings.batch_size, "dcgan.batch_size")
    images = load_images(options.data)
    real_stats = FeatureStats.load(real_stats_path, FEATURES)
    data = DeviceDataset(images, None, setup, scale=(-1.0, 1.0), origin=str(options.data))
    channels, side, _ = data.image_shape
    batches = EpochBatches(len(data), settings.batch_size, setup, seed, "dcgan", name)
    total_steps = settings.epochs * batches.steps_per_epoch

    # 2. networks, optimizers, z generator and sample z; restored from a checkpoint when there is one
    gen = build_model(lambda: Generator(side, channels, settings.z_dim, settings.gf), setup, seed, "dcgan", name, "G")
    disc = build_model(lambda: Discriminator(side, channels, settings.df), setup, seed, "dcgan", name, "D")
    steps = GanSteps(gen, disc, settings, setup, maybe_compile(world.wrap(gen, setup.device), settings.compile),
                     maybe_compile(world.wrap(disc, setup.device), settings.compile))
    z_generator = generator(setup, seed, "dcgan", name, "z")
    checkpoints = options.checkpoints("dcgan", name)
    grid_folder = Path(checkpoints) / "grids"  # kept beside the checkpoints until the run is done
    checkpointer = Checkpointer(
        checkpoints, fingerprint=checkpoint_fingerprint(settings, train, seed, setup, file_md5(options.data)),
        models={"generator": gen, "discriminator": disc},
        optimizers={"generator": steps.generator_optimizer, "discriminator": steps.discriminator_optimizer},
        generators={"z": z_generator}, writer=world.is_main)
    resumed = checkpointer.restore(setup.device)
    if resumed is not None:
        grid_z = resumed.extra["sample_z"].to(setup.device)
        fids = list(resumed.extra.get("fids", []))
    else:
        if world.is_main:
            clear_grids(grid_folder)  # of an earlier run that did not finish here
        grid_source = torch_generator(seed, "dcgan", name, "sample-z")
        grid_z = sample_z(settings.grid_side ** 2, settings.z_dim, grid_source).to(setup.device)
        fids = []
    evaluator = Evaluator(steps, real_stats, settings, seed, name, setup.device)

    def train_step(step: int) -> dict[str, torch.Tensor]:
        real, _ = data.batch(world.shard(batches.indices(step)))
        return steps.step(real, world.shard(sample_z(settings.batch_size, settings.z_dim, z_generator)))

    def sample_hook(step: int, loop: TrainingLoop) -> None:
        grid = sample_grid(to_uint8(steps.generate(grid_z)), columns=settings.grid_side)
        save_png(grid, grid_folder / f"step_{step:07d}.png")
        tracker.log_step_image(grid, "samples", step)

    def fid_hook(step: int, loop: TrainingLoop) -> dict[str, float]:
        fid = evaluator.fid()
        fids.append({"step": step, "fid": fid, "generated": evaluator.count, "real": real_stats.count})
        log.info("dcgan-%s step %d: FID %.2f (%d generated vs %d real; %.1f images/s)", name, step, fid,
                 evaluator.count, real_stats.count, evaluator.images_per_second)
        return {"fid": fid}

    # 3. the steps, in the same MLflow run as before a stop
    params = {"dataset": name, **settings.defining(), "seed": seed, "images": len(data), "image_size": side,
              "channels": channels, "steps": total_steps, "fid_real": real_stats.count, "train": train.defining()}
    tags = {"mlnb.rule": options.rule, "mlnb.model": "dcgan", "mlnb.dataset": name}
    with main_run(world, options.tracking, f"dcgan-{name}", params=params, run_id=resumed.run_id if resumed else None,
                  inputs={"images": options.data, "real_stats": real_stats_path}, tags=tags) as tracker:
        log.info("dcgan-%s on %s (process %d of %d): %d images of %d x %d x %d, %d steps of %d", name,
                 setup.describe(), world.rank + 1, world.size, len(data), side, side, channels, total_steps,
                 settings.batch_size)
        hooks = (Hook(settings.sample_every, sample_hook),
                 Hook(check_points(total_steps, settings.fid_checks), fid_hook))
        with cooperative_stop() as stop:
            loop = TrainingLoop(total_steps=total_steps, images_per_step=settings.batch_size,
                                log_every=train.log_every, checkpoint_every=train.checkpoint_every,
                                checkpointer=checkpointer, tracker=tracker, device=setup.device, stop=stop,
                                hooks=hooks, extra={"sample_z": grid_z.cpu(), "fids": fids},
                                description=f"dcgan-{name}", world=world)
            result = loop.run(train_step, resumed)
        if not world.is_main:
            return None

        # 4. what the finished generator makes, written and logged
        summary = finish(name, options, faces, settings, steps, data, grid_folder, fids, result, tracker)
        write_json(options.out / "summary.json", summary)
        tracker.log_artifact(options.out / "summary.json")
        timing = {"dataset": name, "device": setup.describe(), "steps": result.steps,
                  "train_seconds": result.train_seconds, "images_per_second": result.images_per_second,
                  "fid_images_per_second": evaluator.images_per_second}
        measured = ("train_seconds", "images_per_second", "fid_images_per_second")  # no FID after a resume at the end
        tracker.log_metrics({key: timing[key] for key in measured if timing[key] is not None}, step=total_steps)
        if options.timing:
            write_json(options.timing, timing)
        log.info("dcgan-%s: %.1f training images/s, FID features %s images/s", name, result.images_per_second,
                 "?" if evaluator.images_per_second is None else f"{evaluator.images_per_second:.1f}")
    checkpointer.finish()
    clear_grids(grid_folder)  # they now live under OUT
    return summary


def clear_grids(folder: Path) -> None:
    """Remove the grids this command wrote beside its checkpoints (and the folder, when that empties it)."""
    for grid in folder.glob("step_*.png"):
        grid.unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()


def finish(name: str, options: RunOptions, faces: bool, settings: DcganSettings, steps: GanSteps,
           data: DeviceDataset, grid_folder: Path, fids: list[dict], result, tracker) -> dict[str, Any]:
    """Grids, GIF, Turing page, face rates and the generator under OUT; the same logged to the run."""
    seed, out = options.seed, options.out
    grids = sorted(grid_folder.glob("step_*.png"))
    frames = []
    for grid in grids:
        frame = load_png(grid)
        save_png(frame, out / "samples" / grid.name)
        frames.append(frame)
    save_gif(frames, out / "samples.gif")
    tracker.log_artifact(out / "samples.gif")

    rng = numpy_generator(seed, "dcgan", name, "turing")
    count = min(settings.turing_images, len(data))
    real_rows = np.sort(rng.choice(len(data), count, replace=False))
    real = data.images[torch.from_numpy(real_rows).to(data.images.device)].permute(0, 2, 3, 1).cpu().numpy()
    z_source = torch_generator(seed, "dcgan", name, "turing-z")
    fake = to_uint8(steps.generate(sample_z(count, settings.z_dim, z_source).to(data.images.device)))
    save_text(turing_page(real, fake, rng, f"DCGAN on {name}: real or generated?"), out / "turing.html")
    tracker.log_artifact(out / "turing.html")

    face_rates = {}
    if faces and settings.face_rate_samples:
        face_rates = face_rates_of(seed, name, settings, steps, data)
        tracker.log_metrics(face_rates, step=result.steps)

    save_state_dict(steps.generator, out / "generator.pt")
    # exported as a traced graph (pt2): serving it needs torch, not mlnb
    tracker.log_pytorch_model(steps.generator, "generator", input_example=np.zeros((2, settings.z_dim), np.float32),
                              pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
    return {"model": "dcgan", "dataset": name, "settings": settings.as_dict(), "seed": seed,
            "steps": result.steps, "images": len(data), "image_shape": list(data.image_shape),
            "fid": fids, "face_rates": face_rates, "last_metrics": result.last_metrics}


def face_rates_of(seed: int, name: str, settings: DcganSettings, steps: GanSteps, data: DeviceDataset) -> dict:
    """dlib's detection rate on generated faces, beside the same measure on as many training faces."""
    count = min(settings.face_rate_samples, len(data))
    z_source = torch_generator(seed, "dcgan", name, "face-z")
    generated = to_uint8(steps.generate(sample_z(count, settings.z_dim, z_source).to(data.images.device)))
    rows = np.sort(numpy_generator(seed, "dcgan", name, "face-real").choice(len(data), count, replace=False))
    real = data.images[torch.from_numpy(rows).to(data.images.device)].permute(0, 2, 3, 1).cpu().numpy()
    return {"face_rate_generated": face_detection_rate(generated), "face_rate_real": face_detection_rate(real),
            "face_rate_samples": float(count)}
