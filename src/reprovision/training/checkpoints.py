"""What a checkpoint holds and when it is written: the best model, `last.ckpt` for resuming.

Both files are Lightning's checkpoint dict, loaded with `weights_only=True`: the net's and the
optimizer's state, the LR scheduler, the loop position, the module's hyperparameters (plain
names and numbers: net, optim, classes, image shape, the training split's mean/std), and each
stateful callback's state under its class name (`EpochRecorder`: every finished epoch's metrics
and each process's torch RNG state; one tensor in checkpoints written before data-parallel
resume kept every process's, still read). The class names are part of the format: a renamed
callback would not get its state back from a checkpoint written before the rename. A mid-epoch
`last.ckpt` also holds `epoch_so_far` (each process's kept predictions, the epoch's learning
rate) and the training loader's place in the epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_utilities.core.apply_func import apply_to_collection
from pytorch_lightning.callbacks import ModelCheckpoint

from reprovision.files import atomic_file
from reprovision.tasks import Task

CHECKPOINTS = ("best.ckpt", "last.ckpt")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written beside their target and renamed over it: a full disk or a kill
    mid-write leaves the previous checkpoint intact.

    Files named in `held` stay in memory until another file is written, and are written just
    before it: the best checkpoint (saved whenever val/acc improves) reaches disk together with
    `last.ckpt`, so a run resumed from `last.ckpt` finds no best from epochs it is about to redo
    (but for a kill between the two writes; deterministic training then redoes the same best)."""

    def __init__(self, held: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.held, self.pending = held, {}

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        if Path(path).name in self.held:
            # Copies: the checkpoint's tensors are the live weights and optimizer state.
            self.pending[path] = apply_to_collection(checkpoint, torch.Tensor, torch.clone)
            return
        self.write_held()
        self._write(checkpoint, path)

    def write_held(self) -> None:
        for path, held in self.pending.items():
            self._write(held, path)
        self.pending.clear()

    @staticmethod
    def _write(checkpoint: dict[str, Any], path) -> None:
        with atomic_file(path) as tmp:
            torch.save(checkpoint, tmp)


class BestCheckpoint(ModelCheckpoint):
    """`best.ckpt`: the epoch that ranks best by the task's rule (Task.rank: the monitored metric,
    ties to the lower validation loss; the first of equals), saved at the end of the training
    epoch, after EpochRecorder has the epoch's row. Lightning's own comparison sees one metric only."""

    def __init__(self, checkpoint_dir: Path, task: Task, rows: Callable[[], list[dict[str, float]]]) -> None:
        super().__init__(
            dirpath=checkpoint_dir,
            filename="best",
            monitor=task.monitor,
            mode=task.mode,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
        )
        self.task, self.rows = task, rows

    @property
    def state_key(self) -> str:
        # Lightning files a callback's state under its class name: the name checkpoints written
        # before this class carry, so they resume with it.
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def check_monitor_top_k(self, trainer: pl.Trainer, current: torch.Tensor | None = None) -> bool:
        rows = self.rows()
        best = current is not None and bool(rows) and self.task.best(rows) is rows[-1]
        return trainer.strategy.reduce_boolean_decision(best, all=False)  # every rank saves, or none


def best_checkpoint(checkpoint_dir: Path, task: Task | None, rows: Callable[[], list[dict[str, float]]]):
    """BestCheckpoint over the epochs' `rows`; with no `task` (a fit without validation) the final
    epoch's model."""
    if task is not None:
        return BestCheckpoint(checkpoint_dir, task, rows)
    return ModelCheckpoint(dirpath=checkpoint_dir, filename="best", save_on_train_epoch_end=True,
                           enable_version_counter=False)  # fmt: skip


class LastCheckpoint(ModelCheckpoint):
    """`last.ckpt` at the end of the final epoch and, `every_s` seconds after the previous save,
    at the end of the first batch past it (an epoch's last batch: at the epoch's end), so an epoch
    longer than `every_s` is saved mid-way and resumed from there (every epoch's end with 0, and
    never mid-epoch); `check(trainer)` runs before a mid-epoch save, `saved()` after each save.
    Under data-parallel training the processes agree every `AGREE_EVERY` batches.

    Its own callback (no monitor), not ModelCheckpoint's save_last: that writes only in epochs
    that improved the monitored metric, so a kill after a run of epochs without a better val/acc
    would resume from the last improvement and redo them."""

    AGREE_EVERY = 32  # batches: a broadcast each costs every process a wait

    def __init__(self, dirpath: Path, every_s: float, saved, check=lambda trainer: None) -> None:
        super().__init__(dirpath=dirpath, filename="last", save_on_train_epoch_end=True, enable_version_counter=False)
        self.every_s, self.saved, self.check = every_s, saved, check

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        if not self.every_s or trainer.is_last_batch or (trainer.world_size > 1 and batch_idx % self.AGREE_EVERY):
            return
        if trainer.strategy.broadcast(time.monotonic() >= self.due):
            self.check(trainer)
            trainer.save_checkpoint(Path(self.dirpath) / "last.ckpt")
            self.due = time.monotonic() + self.every_s
            self.saved()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.due = time.monotonic() + self.every_s

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Runs after RankedEarlyStopping (Lightning calls checkpoint callbacks last): should_stop is set.
        final = trainer.current_epoch + 1 >= trainer.max_epochs or trainer.should_stop
        # Every process decides as the first does: a save waits for all of them at a barrier.
        if trainer.strategy.broadcast(final or time.monotonic() >= self.due):
            super().on_train_epoch_end(trainer, pl_module)
            self.due = time.monotonic() + self.every_s
            self.saved()
