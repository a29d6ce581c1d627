"""How much memory a net takes to train, found on torch's meta device: nothing is allocated, so a
net too large for the machine is refused in one line before it is built."""

from __future__ import annotations

import torch

from reprovision.errors import ConfigError
from reprovision.models.nets import build_net

FLOAT32 = 4


def state_tensors(optim: dict) -> int:
    """Tensors the optimizer keeps per parameter (torch's implementations): Adam's two moments,
    Adagrad's sum, RMSprop's square average, and a momentum buffer where momentum is not 0."""
    own = {"adam": 2, "adamw": 2, "adagrad": 1, "rmsprop": 1}.get(optim["name"], 0)
    return own + (1 if optim.get("momentum", 0) else 0)


def parameter_count(net: dict, inputs: dict, outputs: int) -> int:
    """The parameters of the net `net` (model config: name and settings) for `inputs`, counted
    without allocating them."""
    kwargs = {k: v for k, v in net.items() if k not in ("name", "init")}
    with torch.device("meta"):
        built = build_net(net["name"], inputs, outputs, **kwargs)
    return sum(p.numel() for p in built.parameters())


def training_bytes(parameters: int, optim: dict) -> int:
    """Weights, gradients and optimizer state in float32: a floor under what training takes (the
    activations of a batch come on top)."""
    return parameters * FLOAT32 * (2 + state_tensors(optim))


def check_fits(parameters: int, optim: dict, free: int, where: str, copies: int = 1) -> None:
    """Refuse a net whose training state alone (in `copies` processes) exceeds `free` bytes."""
    optimizer = optim["name"]
    need = training_bytes(parameters, optim) * copies
    if need > free:
        gib = 1 << 30
        per = f" in each of {copies} processes" if copies > 1 else ""
        raise ConfigError(
            f"the model has {parameters:,} parameters: {need / gib:.1f} GiB of weights, gradients and "
            f"optim={optimizer} state{per}, over the {free / gib:.1f} GiB free on {where}; "
            "make model.hidden or model.channels smaller"
        )
