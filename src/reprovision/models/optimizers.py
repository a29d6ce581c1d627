"""The optimizer table and the learning-rate schedule, from plain config values."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def _sgd(params, o, fused, momentum=0.0, nesterov=False):
    return torch.optim.SGD(
        params, lr=o["lr"], momentum=momentum, nesterov=nesterov, weight_decay=o["weight_decay"], fused=fused
    )


# Each takes (parameters, optim config, fused): `fused` is True where torch has a fused kernel
# for the optimizer on the parameters' device (one kernel for all parameters: fewer launches).
OPTIMIZERS = {
    "sgd": lambda params, o, fused: _sgd(params, o, fused),
    "momentum": lambda params, o, fused: _sgd(params, o, fused, momentum=o["momentum"]),
    "nesterov": lambda params, o, fused: _sgd(params, o, fused, momentum=o["momentum"], nesterov=True),
    "adagrad": lambda params, o, fused: torch.optim.Adagrad(
        params, lr=o["lr"], weight_decay=o["weight_decay"], fused=fused
    ),
    "rmsprop": lambda params, o, fused: torch.optim.RMSprop(  # no fused kernel in torch
        params, lr=o["lr"], alpha=o["alpha"], momentum=o["momentum"], weight_decay=o["weight_decay"]
    ),
    "adam": lambda params, o, fused: torch.optim.Adam(
        params, lr=o["lr"], betas=tuple(o["betas"]), weight_decay=o["weight_decay"], fused=fused
    ),
    "adamw": lambda params, o, fused: torch.optim.AdamW(
        params, lr=o["lr"], betas=tuple(o["betas"]), weight_decay=o["weight_decay"], fused=fused
    ),
}
FUSED_DEVICES = ("cpu", "cuda")


def build_optimizer(params: Iterable[torch.nn.Parameter], optim: dict, fused: bool | None) -> torch.optim.Optimizer:
    """`optim['name']` from the table, with the config's learning rate, decay and momentum."""
    return OPTIMIZERS[optim["name"]](params, optim, fused)


def lr_factor(step: int, steps_per_epoch: int, total_steps: int, o: dict) -> float:
    """The learning rate at optimizer step `step` as a fraction of optim.lr: linear warm-up
    over optim.warmup_epochs, then the schedule over the remaining steps."""
    warmup = o["warmup_epochs"] * steps_per_epoch
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(total_steps - warmup, 1)  # 0 -> 1 over the rest of training
    schedule = o["schedule"]
    if schedule == "step":
        return o["gamma"] ** (step // (o["step_epochs"] * steps_per_epoch))
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    if schedule == "one_cycle":
        return max(1 - t, 0.0)
    return 1.0


def lr_schedule(optimizer: torch.optim.Optimizer, optim: dict, total_steps: int, max_epochs: int):
    """A LambdaLR stepped once per optimizer step, following `lr_factor`."""
    per_epoch = max(total_steps // max_epochs, 1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, per_epoch, total_steps, optim))
