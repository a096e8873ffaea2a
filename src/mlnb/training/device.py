"""Where a model trains and in which number format.

``setup_device("auto")`` picks CUDA when there is one, else the CPU. On CUDA,
training runs under bf16 autocast with channels_last tensors (faster
convolutions on tensor cores); on the CPU both are off by default, but can be
switched on (the tests exercise those code paths on the CPU).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator

import torch
from torch import nn

from mlnb.errors import ConfigError
from mlnb.rng import torch_seed

log = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def choose_device(requested: str = "auto") -> torch.device:
    """``auto``: the first CUDA device when present, else the CPU; ``cpu``, ``cuda`` or ``cuda:N`` as asked."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested != "cpu" and not (requested == "cuda" or requested.startswith("cuda:")):
        raise ConfigError(f"train.device: {requested!r} is not one of auto, cpu, cuda, cuda:N")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {requested!r} asked for, but no CUDA device is available")
    return torch.device(requested)


@dataclasses.dataclass(frozen=True)
class DeviceSetup:
    """A device and the number formats used on it."""

    device: torch.device
    bf16: bool
    channels_last: bool

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast for the forward pass (and loss) when enabled; a no-op otherwise."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def images(self, batch: torch.Tensor) -> torch.Tensor:
        """A 4-D image batch in this setup's memory format (other tensors pass unchanged)."""
        return batch.contiguous(memory_format=self.memory_format) if batch.dim() == 4 else batch

    def describe(self) -> str:
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        return f"{self.device} ({name}), bf16 {'on' if self.bf16 else 'off'}, " \
               f"channels_last {'on' if self.channels_last else 'off'}"


def setup_device(requested: str = "auto", bf16: bool | None = None,
                 channels_last: bool | None = None) -> DeviceSetup:
    """The device and its formats; ``None`` means on for CUDA, off for the CPU."""
    device = choose_device(requested)
    on_cuda = device.type == "cuda"
    return DeviceSetup(device=device,
                       bf16=on_cuda if bf16 is None else bf16,
                       channels_last=on_cuda if channels_last is None else channels_last)


def build_model(factory: Callable[[], nn.Module], setup: DeviceSetup, seed: int, *keys: object) -> nn.Module:
    """``factory()`` with its initial weights drawn from (seed, *keys), moved to the device.

    The weights are drawn on the CPU inside a forked RNG, so the global RNG is left
    as it was and the same seed gives the same weights on every device.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed(seed, *keys))
        model = factory()
    return model.to(setup.device, memory_format=setup.memory_format)


def generator(setup: DeviceSetup, seed: int, *keys: object) -> torch.Generator:
    """A torch.Generator on the setup's device, seeded from (seed, *keys) (see mlnb.rng)."""
    return torch.Generator(device=setup.device).manual_seed(torch_seed(seed, *keys))


def maybe_compile(model: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile(model)`` when enabled (the compiled module shares the model's parameters)."""
    if not enabled:
        return model
    log.info("compiling the model with torch.compile (first steps are slower)")
    return torch.compile(model)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Use ``threads`` CPU threads for torch's intra-op work inside the block."""
    if threads < 1:
        raise ConfigError(f"train.threads: must be >= 1, got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def cpu_threads(threads: int) -> Iterator[None]:
    """``threads`` CPU threads inside the block for torch and for the BLAS/OpenMP pools under numpy.

    Without the BLAS limit numpy's OpenBLAS starts a thread per core whatever the job
    was given, and beside other jobs those threads wait on each other (the MLP ran
    1,300-2,600 instead of ~30,000 images/s on a loaded machine).
    """
    from threadpoolctl import threadpool_limits

    with torch_threads(threads), threadpool_limits(limits=threads):
        yield
