"""Atomic training checkpoints: everything a stopped run needs to continue exactly where it stopped.

A checkpoint holds the models' and optimizers' (and LR schedulers') states, the
step, the states of the run's torch generators, the MLflow run id, a
fingerprint of the settings it was trained with, and any extra tensors (a
DCGAN's fixed z). It is written to a temporary file in the same folder,
fsynced, and renamed over the previous one, so an interrupted write never
replaces a good checkpoint; it is read back with ``weights_only=True``.

Checkpoints live under ``results/checkpoints/<stage>/<run>/``, outside every
rule's outputs (Snakemake removes the outputs of a failed job, never these):
``last.pt`` while a run is under way, renamed to ``final.pt`` once the job has
finished, so the next job starts afresh rather than resuming a finished run.

One job at a time per folder: the process that writes a folder's checkpoints
holds an exclusive ``flock`` on its ``.lock`` file from its first restore or save
until :meth:`Checkpointer.finish` or its exit. The kernel drops the lock with the
process, so a killed job never leaves it stuck; a second job on the folder is
refused with one line naming it. Whoever takes the lock removes the temporary
files a killed writer left there (no other writer can be live).
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch

from mlnb.errors import ConfigError, DataError
from mlnb.io import atomic_path

log = logging.getLogger(__name__)

CHECKPOINT_ROOT = Path("results/checkpoints")
FORMAT = "mlnb-checkpoint-1"
LOCK_FILE = ".lock"

#: The checkpoint folders whose lock this process holds, each with the open file that holds it. The lock is the
#: job's, and the job is the process: another Checkpointer of the folder in it (a rerun from Python) shares it.
_held_folders: dict[Path, Any] = {}


def checkpoint_folder(stage: str, run: str, root: str | os.PathLike = CHECKPOINT_ROOT) -> Path:
    return Path(root) / stage / run


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> None:
    """Write ``state`` with torch.save to a temp file beside ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            torch.save({"format": FORMAT, **state}, handle)
            handle.flush()
            os.fsync(handle.fileno())
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


def hold_folder(folder: Path) -> bool:
    """Take ``folder``'s lock for this process (True), or see that it already has it (False); ConfigError
    when another process holds it."""
    key = folder.resolve()
    if key in _held_folders:
        return False
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / LOCK_FILE, "a")  # noqa: SIM115 - open until released or the process ends
    except OSError as error:
        raise DataError(f"checkpoint folder {folder}: cannot create its lock file ({error})") from error
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigError(f"checkpoint folder {folder} is in use by another job (it holds {folder / LOCK_FILE}): "
                          "wait for it to end, or give this one another --checkpoint-dir") from None
    _held_folders[key] = handle
    return True


def release_folder(folder: Path) -> None:
    """Give up this process's lock on ``folder`` (if it holds it)."""
    handle = _held_folders.pop(folder.resolve(), None)
    if handle is not None:
        handle.close()  # closing the only open file that holds a flock releases it


def load_checkpoint(path: str | os.PathLike, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """The state saved at ``path`` (tensors only: loaded with ``weights_only=True``)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # a truncated or foreign file: torch raises several types
        raise DataError(f"{path}: not a readable checkpoint ({error})") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise DataError(f"{path}: not an mlnb checkpoint (format {FORMAT} expected)")
    return state


class Stateful(Protocol):
    """A checkpointed model: a torch module, or anything with its two state methods (the MLP's run)."""

    def state_dict(self) -> Mapping[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> Any: ...


@dataclasses.dataclass(frozen=True)
class Resumed:
    """What a restored checkpoint says about the run it continues."""

    step: int
    run_id: str | None
    extra: dict[str, Any]


class Checkpointer:
    """Saves and restores one training run's objects, by name, in ``folder``.

    ``fingerprint`` identifies the settings that shape the run (e.g. a hash of them):
    a checkpoint written with other settings is not resumed (the run starts over and
    replaces it at its first checkpoint). ``writer``: this process writes the checkpoints
    and so holds the folder's lock (False for the other processes of a data-parallel job,
    which only restore).
    """

    def __init__(self, folder: str | os.PathLike, *, fingerprint: str,
                 models: Mapping[str, Stateful],
                 optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
                 schedulers: Mapping[str, Any] | None = None,
                 generators: Mapping[str, torch.Generator] | None = None, writer: bool = True):
        self.folder = Path(folder)
        self.writer = writer
        self.fingerprint = fingerprint
        self.models = dict(models)
        self.optimizers = dict(optimizers or {})
        self.schedulers = dict(schedulers or {})
        self.generators = dict(generators or {})

    @property
    def last(self) -> Path:
        return self.folder / "last.pt"

    @property
    def final(self) -> Path:
        return self.folder / "final.pt"

    def save(self, step: int, run_id: str | None, extra: Mapping[str, Any] | None = None) -> None:
        self._hold()
        save_checkpoint(self.last, {
            "step": step,
            "run_id": run_id,
            "fingerprint": self.fingerprint,
            "models": {name: _unwrapped(model).state_dict() for name, model in self.models.items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "schedulers": {name: sched.state_dict() for name, sched in self.schedulers.items()},
            "generators": {name: gen.get_state() for name, gen in self.generators.items()},
            "extra": dict(extra or {}),
        })
        log.debug("checkpoint at step %d -> %s", step, self.last)

    def restore(self, map_location: torch.device | str = "cpu") -> Resumed | None:
        """Load ``last.pt`` into the objects; None when there is none or it belongs to other settings."""
        self._hold()
        if not self.last.exists():
            return None
        state = load_checkpoint(self.last, map_location)
        if state.get("fingerprint") != self.fingerprint:
            log.warning("%s was written with other settings: starting afresh", self.last)
            return None
        expected = {"models": self.models, "optimizers": self.optimizers,
                    "schedulers": self.schedulers, "generators": self.generators}
        for kind, objects in expected.items():
            if set(state[kind]) != set(objects):
                raise DataError(f"{self.last}: holds {kind} {sorted(state[kind])}, expected {sorted(objects)}")
        for name, model in self.models.items():
            _unwrapped(model).load_state_dict(state["models"][name])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state["schedulers"][name])
        for name, generator in self.generators.items():
            generator.set_state(state["generators"][name].cpu())
        log.info("resuming from %s at step %d", self.last, state["step"])
        return Resumed(step=int(state["step"]), run_id=state["run_id"], extra=state["extra"])

    def finish(self) -> None:
        """Mark the run finished: ``last.pt`` becomes ``final.pt``, so a later job starts afresh."""
        if self.last.exists():
            os.replace(self.last, self.final)
        release_folder(self.folder)

    def _hold(self) -> None:
        """Take the folder's lock if this process writes it; on taking it, remove a killed writer's temporary
        files (:func:`mlnb.io.atomic_path` names them ``.last.pt.*.part.pt``)."""
        if not self.writer or not hold_folder(self.folder):
            return
        for stray in self.folder.glob(f".{self.last.name}.*.part*"):
            log.info("removing %s (a temporary checkpoint file of a job that did not finish)", stray)
            stray.unlink(missing_ok=True)


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The original module of a torch.compile'd one (its state-dict keys have no ``_orig_mod.``)."""
    return getattr(model, "_orig_mod", model)
