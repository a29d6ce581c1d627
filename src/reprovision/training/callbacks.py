"""The train stage's own callbacks: epoch rows for MLflow, the NaN check, a resumable early
stop, a throttled progress bar."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, TQDMProgressBar
from torch.distributed import ReduceOp

from reprovision import tracking
from reprovision.errors import StageFailed
from reprovision.models.module import by_process, process_rank
from reprovision.tasks import Task


class EpochRecorder(Callback):
    """Epoch metrics: saved in every checkpoint, logged to MLflow once `last.ckpt` holds them.

    `flush()` runs after each write of `last.ckpt` (and at the end of training), so a kill at
    any moment leaves no epoch logged twice: a resumed run logs exactly the rows MLflow does
    not have yet.
    """

    def __init__(self, columns: tuple[str, ...]) -> None:
        self.columns = columns  # the task's curve columns (metrics/curves.csv), "epoch" first
        self.run: tracking.PipelineRun | None = None  # None on every process but the first
        self.logged = 0  # epochs already in MLflow
        self.rows: list[dict[str, float]] = []

    def track(self, run: tracking.PipelineRun, logged: int) -> None:
        self.run, self.logged = run, logged

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Runs before ModelCheckpoint (a monitoring callback) saves this epoch.
        metrics = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch + 1}
        row.update({k: float(metrics[k]) for k in self.columns[1:] if k in metrics})
        self.rows.append(row)

    def flush(self) -> None:
        if self.run is None:
            return
        # One request for all the new rows (a commit per row cost ~9 ms on SQLite).
        new = self.rows[self.logged :]
        self.run.log_steps({int(r["epoch"]): {k: v for k, v in r.items() if k != "epoch"} for r in new})
        self.logged = len(self.rows)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.flush()

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        # The RNG as of this checkpoint, every process's (their draws differ once their batches
        # have): the next epoch's shuffle, or the rest of this one, and dropout match an
        # uninterrupted run's.
        trainer = getattr(self, "trainer", None)
        cuda = torch.stack(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else torch.zeros(0, 0)
        return {
            "rows": self.rows,
            "torch_rng": by_process(trainer, torch.get_rng_state()),
            "cuda_rng": by_process(trainer, cuda),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = list(state["rows"])
        torch_rng, cuda_rng = state["torch_rng"], state["cuda_rng"]
        if isinstance(torch_rng, torch.Tensor):  # written before every process's state was kept
            torch_rng, cuda_rng = [torch_rng], [torch.stack(cuda_rng) if cuda_rng else torch.zeros(0, 0)]
        rank, world = process_rank(getattr(self, "trainer", None))
        if len(torch_rng) != world:  # another number of processes: the first one's
            rank = 0
        torch.set_rng_state(torch_rng[rank])
        if len(cuda_rng[rank]) and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(list(cuda_rng[rank]))


class NonFiniteLoss(Callback):
    """Fail the stage on a NaN or infinite training loss, naming the first such step.

    A step only keeps its loss (no device op: a check per step cost more host time than a small
    net's step on a CPU, and a GPU must not wait for the host); the host reads the epoch's check
    once, at its end, and before a mid-epoch `last.ckpt` (`check`), so no checkpoint holds a
    diverged model.
    """

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # An epoch resumed mid-way gets no on_train_epoch_start: its first step is counted back.
        self.on_train_epoch_start(trainer, pl_module)
        self.first_step -= trainer.fit_loop.epoch_loop.batch_progress.current.ready

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.first_step = trainer.global_step
        self.losses: list[torch.Tensor] = []  # this epoch's unchecked ones, on the device
        self.batches: list[int] = []  # their batch indices

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append((outputs["loss"] if isinstance(outputs, dict) else outputs).detach())
        self.batches.append(batch_idx)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check(trainer)

    def check(self, trainer: pl.Trainer) -> None:
        """Stop on the first non-finite loss kept since the last check; forget those checked."""
        if not self.losses:
            return
        losses = torch.stack(self.losses).float()
        none = torch.iinfo(torch.long).max
        batches = torch.tensor(self.batches, device=losses.device)
        own = torch.where(torch.isfinite(losses), none, batches).min()  # this process's first bad batch
        first = own
        if trainer.world_size > 1:
            # Every process must stop, and before any saves: the earliest bad batch of any process
            # (a NaN gradient on one is averaged into all after it).
            first = trainer.strategy.reduce(own, reduce_op=ReduceOp.MIN)
        batch = int(first)  # the epoch's one host sync
        if batch != none:
            loss = float(losses[self.batches.index(batch)]) if int(own) == batch else float("nan")  # another's
            raise StageFailed(
                f"training loss is {loss} at step {self.first_step + batch + 1} "
                f"(epoch {trainer.current_epoch + 1}, batch {batch + 1}); lower optim.lr or pick another optimizer; "
                + checkpoint_note(trainer)
            )
        self.losses, self.batches = [], []


def checkpoint_note(trainer: pl.Trainer) -> str:
    """What a failed run leaves to resume from, as it is: a NaN at step 3 comes before any checkpoint."""
    dirs = {Path(cb.dirpath) for cb in trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)}
    if any((d / "last.ckpt").is_file() for d in dirs):
        return "the last good checkpoint is kept"
    return "no checkpoint had been written yet"


class RankedEarlyStopping(Callback):
    """Stops `patience` epochs after the best one by the best checkpoint's rule (Task.rank: ties to
    the lower validation loss), or at once when the monitored metric is not finite (fit then fails).

    Lightning's EarlyStopping compares one metric, so a tie in accuracy with a lower loss would
    not count as the improvement the best checkpoint takes it for. The decision is a function of
    EpochRecorder's rows, which every checkpoint holds: a run resumed after its stop stops again."""

    def __init__(self, task: Task, patience: int, rows: Callable[[], list[dict[str, float]]]) -> None:
        self.task, self.patience, self.rows = task, patience, rows
        self.stopped_epoch = 0

    def _decide(self, trainer: pl.Trainer) -> None:
        rows = self.rows()
        if not rows or self.task.monitor not in rows[-1]:
            return
        since_best = len(rows) - 1 - rows.index(self.task.best(rows))
        stop = not math.isfinite(rows[-1][self.task.monitor]) or since_best >= self.patience
        if trainer.strategy.reduce_boolean_decision(stop, all=False):  # every process stops together
            trainer.should_stop, self.stopped_epoch = True, len(rows)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._decide(trainer)  # restored rows of a run that had stopped

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._decide(trainer)  # after EpochRecorder (listed after it), before the checkpoints


class EpochLines(Callback):
    """One line per epoch on stdout, for logs and CI (`dvc repro > log`): the live bar redraws
    with a carriage return per step, which a log keeps as one line each."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        shown = "  ".join(f"{k} {float(v):.4f}" for k, v in sorted(metrics.items()) if k.startswith(("train/", "val/")))
        print(f"train: epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  {shown}", flush=True)


def live_progress() -> bool:
    """A live bar only where a person watches both streams: a terminal, not a log or a pipe."""
    return sys.stdout.isatty() and sys.stderr.isatty()


class ProgressBar(TQDMProgressBar):
    """Lightning's progress bar, redrawn at most 10 times a second and at each loop's end: it
    redraws after every batch, and a redraw costs more than a small net's step."""

    def __init__(self) -> None:
        super().__init__()
        self.drawn = 0.0

    def _should_update(self, current: int, total: int) -> bool:
        now = time.monotonic()
        if current != total and now - self.drawn < 0.1:
            return False
        self.drawn = now
        return super()._should_update(current, total)
