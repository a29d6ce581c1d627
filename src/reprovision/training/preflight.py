"""What a config needs of this machine, checked by the config stage before DVC deletes any stage's
outputs, and again where training starts: the accelerator and its devices, the tracking store,
and memory for the net's training state."""

from __future__ import annotations

import dataclasses

import psutil
import torch

from reprovision import tracking
from reprovision.config import Config, DataConfig
from reprovision.config.data import CLASS_COUNTS, IMAGE_SHAPES, TABLE_COLUMNS, TEXT_WORDS
from reprovision.data.raw import FIRST_WORD
from reprovision.errors import ConfigError
from reprovision.models.footprint import check_fits, parameter_count
from reprovision.models.predictor import device_for

SMALLEST_IMAGE = 8  # digits' side: every image net builds for it


def check_machine(cfg: Config) -> None:
    """Everything the train stage would refuse on this machine, before any stage runs."""
    device = check_devices(cfg)
    tracking.check_reachable(tracking.tracking_uri(cfg))
    check_memory(cfg, *smallest_inputs(cfg.data), device)


def check_devices(cfg: Config) -> torch.device:
    """The device training runs on; one line where trainer.accelerator or trainer.devices ask for
    what this machine has not."""
    device = device_for(cfg.trainer.accelerator)  # gpu with neither CUDA nor MPS: refused here
    if device.type == "cuda" and cfg.trainer.devices > torch.cuda.device_count():
        raise ConfigError(
            f"trainer.devices={cfg.trainer.devices} but this machine has {torch.cuda.device_count()} GPU(s); "
            "lower trainer.devices"
        )
    return device


def check_memory(cfg: Config, inputs: dict, outputs: int, device: torch.device) -> None:
    """Refuse a net whose weights, gradients and optimizer state exceed the free memory of `device`
    (of the host for a CPU, in each of trainer.devices processes)."""
    count = parameter_count(dataclasses.asdict(cfg.model), inputs, outputs)
    if device.type == "cuda":
        free, where = torch.cuda.mem_get_info(device)[0], torch.cuda.get_device_name(device)
    else:
        free, where = psutil.virtual_memory().available, "this machine"
    copies = cfg.trainer.devices if device.type == "cpu" else 1
    check_fits(count, dataclasses.asdict(cfg.optim), free, where, copies)


def smallest_inputs(data: DataConfig) -> tuple[dict, int]:
    """The net's inputs and outputs as far as the config fixes them before any file is read (the
    normalise stage's `inputs`); where it does not (a user's table, a vocabulary), the smallest the
    data could be, so the parameter count is a floor and never refuses a net that fits."""
    if data.kind == "image":
        side = data.image_size or SMALLEST_IMAGE
        shape = IMAGE_SHAPES.get(data.name) or (data.channels or 1, side, side)
        inputs = {"kind": "image", "shape": list(shape)}
    elif data.kind == "table":
        inputs = {"kind": "table", "features": ["column"] * TABLE_COLUMNS.get(data.name, 1)}
    else:  # the vocabulary: data.num_words of the training split's words, as many as it has
        words = min(data.num_words, TEXT_WORDS.get(data.name, 1))
        inputs = {"kind": "text", "vocabulary": ["word"] * (FIRST_WORD + words), "max_length": data.max_length}
    if data.task == "regression":
        return inputs, 1
    return inputs, len(data.classes) if data.classes else CLASS_COUNTS.get(data.name, 2)
