"""Where the train stage's time goes: start-up, torch.compile's compiling, and the fit loop."""

from __future__ import annotations

import time

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback


def compile_seconds() -> float:
    """Seconds torch.compile has spent compiling in this process, by TorchDynamo's own tally:
    tracing, Inductor's code generation and loads from its cache at a graph's first call, and the
    backward graphs compiled at their first backward pass."""
    from torch._dynamo.utils import compilation_time_metrics

    return sum(sum(compilation_time_metrics.get(k, ())) for k in ("_compile.compile_inner", "backward._backward_impl"))


class Stopwatch(Callback):
    """Where the stage's time goes: start-up (command start to the first epoch: imports, data
    onto the device, MLflow run), the fit loop (epochs, validation, checkpoints, MLflow logging)
    less torch.compile's compiling, which is counted apart. The device is synchronised at the
    fit loop's two ends only. `train_images` counts the images trained on in this process's
    fit, summed over the data-parallel processes (a resumed run counts only what it trained)."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.images = 0  # this process's, counted from batch shapes: no sync
        self.seconds: dict[str, float] = {"startup_s": 0.0, "compile_s": 0.0, "train_s": 0.0, "train_images": 0}

    def _now(self, trainer: pl.Trainer) -> float:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.fit_start, self.compile_start = self._now(trainer), compile_seconds()
        self.seconds["startup_s"] = self.fit_start - self.started
        self.step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # Only batches that stepped: a run resumed at an epoch's end replays that batch's hooks.
        if trainer.global_step > self.step:
            self.images, self.step = self.images + len(batch[1]), trainer.global_step

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        fit, compiling = self._now(trainer) - self.fit_start, compile_seconds() - self.compile_start
        # Summed over the processes: their last batches of an epoch may differ by an image.
        mine = torch.tensor(self.images, device=trainer.strategy.root_device)
        images = int(trainer.strategy.reduce(mine, reduce_op="sum"))
        self.seconds.update({"compile_s": compiling, "train_s": fit - compiling, "train_images": images})

    def report(self) -> dict[str, float]:
        """The stage's seconds so far, with its total and training throughput."""
        timing = {**self.seconds, "total_s": time.perf_counter() - self.started}
        timing["train_images_per_s"] = timing["train_images"] / timing["train_s"] if timing["train_s"] else 0.0
        return timing
