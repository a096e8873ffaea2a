"""The ``train`` config section: knobs shared by every training command."""

from __future__ import annotations

import dataclasses

from mlnb.settings import Settings, add_settings_arguments, settings_from_args
from mlnb.training.device import DeviceSetup, choose_device
from mlnb.training.distributed import World, rank_device

OPTION = "train-settings"


@dataclasses.dataclass(frozen=True)
class TrainSettings(Settings):
    section = "train"

    device: str
    bf16: bool
    channels_last: bool
    threads: int
    log_every: int
    checkpoint_every: int

    def device_setup(self, world: World = World()) -> DeviceSetup:
        """bf16 and channels_last apply on CUDA only: on the CPU they would only slow training down.

        In a data-parallel job each process gets its own GPU (``cuda:LOCAL_RANK``, see mlnb.training.distributed).
        """
        device = rank_device(world, choose_device(self.device))
        on_cuda = device.type == "cuda"
        return DeviceSetup(device, bf16=self.bf16 and on_cuda, channels_last=self.channels_last and on_cuda)


def add_train_arguments(parser) -> None:
    """``--train-settings JSON|FILE`` and one flag per key (``--device``, ``--threads``, ...)."""
    add_settings_arguments(parser, TrainSettings, option=OPTION)


def train_settings_from_args(args) -> TrainSettings:
    return settings_from_args(TrainSettings, args, option=OPTION)
