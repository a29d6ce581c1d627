"""How much memory a net takes to train, found on torch's meta device: nothing is allocated, so a
net too large for the machine is refused in one line before it is built."""

from __future__ import annotations

import torch

from reprovision.errors import ConfigError
from reprovision.models.nets import build_net

# Tensors the optimizer keeps per parameter (torch's implementations): Adam's two moments, the
# momentum buffer, Adagrad's sum, RMSprop's square average and its momentum buffer.
OPTIMIZER_STATE = {"sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 2, "adam": 2, "adamw": 2}
FLOAT32 = 4


def parameter_count(net: dict, inputs: dict, outputs: int) -> int:
    """The parameters of the net `net` (model config: name and settings) for `inputs`, counted
    without allocating them."""
    kwargs = {k: v for k, v in net.items() if k not in ("name", "init")}
    with torch.device("meta"):
        built = build_net(net["name"], inputs, outputs, **kwargs)
    return sum(p.numel() for p in built.parameters())


def training_bytes(parameters: int, optimizer: str) -> int:
    """Weights, gradients and optimizer state in float32: a floor under what training takes (the
    activations of a batch come on top)."""
    return parameters * FLOAT32 * (2 + OPTIMIZER_STATE[optimizer])


def check_fits(parameters: int, optimizer: str, free: int, where: str, copies: int = 1) -> None:
    """Refuse a net whose training state alone (in `copies` processes) exceeds `free` bytes."""
    need = training_bytes(parameters, optimizer) * copies
    if need > free:
        gib = 1 << 30
        per = f" in each of {copies} processes" if copies > 1 else ""
        raise ConfigError(
            f"the model has {parameters:,} parameters: {need / gib:.1f} GiB of weights, gradients and "
            f"optim={optimizer} state{per}, over the {free / gib:.1f} GiB free on {where}; "
            "make model.hidden or model.channels smaller"
        )
