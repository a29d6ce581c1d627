"""Build what a fit needs from the config: the DataModule, the LightningModule, the callbacks
and the Trainer. Each is one function; `fit.train` calls them in order."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from reprovision.config import Config
from reprovision.data.datamodule import SplitDataModule
from reprovision.errors import ConfigError
from reprovision.models.module import Model
from reprovision.training.callbacks import (
    EpochLines,
    EpochRecorder,
    NonFiniteLoss,
    ProgressBar,
    RankedEarlyStopping,
    live_progress,
)
from reprovision.training.checkpoints import AtomicCheckpointIO, LastCheckpoint, best_checkpoint
from reprovision.training.timing import Stopwatch

PRECISION = {"32": "32-true", "bf16-mixed": "bf16-mixed", "16-mixed": "16-mixed"}


def build_datamodule(cfg: Config, split_dir: Path, data_dir: Path) -> SplitDataModule:
    d = cfg.data
    return SplitDataModule(
        split_dir, data_dir, d.batch_size, d.num_workers, cfg.seed, d.loader, d.eval_batch_size, d.crop_padding, d.flip,
        d.device_max_mb, tuple(d.crop_scale) if d.crop_scale else None,
    )  # fmt: skip


def build_module(cfg: Config, stats: dict) -> Model:
    """The configured net for the data's task, carrying what normalise fitted on the training split."""
    if stats["task"] != cfg.data.task:
        raise ConfigError(f"data/normalised is for {stats['task']}, the config for {cfg.data.task}; run dvc repro")
    module = Model(
        net=dataclasses.asdict(cfg.model),
        optim=dataclasses.asdict(cfg.optim),
        task=stats["task"],
        classes=stats["classes"],
        inputs=stats["inputs"],
        label_smoothing=cfg.trainer.label_smoothing,
        target=stats["target"],
        target_mean=stats.get("target_mean"),
    )
    speed_up(module.net, cfg.trainer.channels_last, cfg.trainer.compile)
    return module


def speed_up(net: torch.nn.Module, channels_last: bool, compile: bool) -> None:
    """Lay out and compile `net` in place for speed; its outputs and state dict do not change."""
    if channels_last:
        # Conv weights in NHWC; convolutions then produce NHWC activations, which tensor cores read
        # without transposes. Checkpoints hold the same values either way.
        net.to(memory_format=torch.channels_last)
    if compile:
        # Inductor caches compiled kernels by graph: a second run with the same net skips most of
        # the compiling. One cache per user, not in /tmp (wiped) nor in the working directory
        # (`dvc exp run --temp` and queued experiments each run in a fresh copy).
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reprovision" / "torch-compile"
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache))
        net.compile()  # in place: the state dict keeps its keys, checkpoints stay interchangeable


@dataclass
class Callbacks:
    """The fit's callbacks by role; `all` in the order Lightning must call them."""

    stopwatch: Stopwatch
    recorder: EpochRecorder
    best: ModelCheckpoint
    last: LastCheckpoint
    early: RankedEarlyStopping | None
    checkpoint_io: AtomicCheckpointIO
    all: list[Callback]


def build_callbacks(cfg: Config, checkpoint_dir: Path, stopwatch: Stopwatch, validate: bool = True) -> Callbacks:
    # Both checkpoints save at the training epoch's end, after EpochRecorder has the epoch's row;
    # the epoch rows reach MLflow right after each `last.ckpt` write.
    task = cfg.data.task_spec
    recorder = EpochRecorder(task.curve_columns)
    best = best_checkpoint(checkpoint_dir, task if validate else None, lambda: recorder.rows)
    nonfinite = NonFiniteLoss()
    last = LastCheckpoint(checkpoint_dir, cfg.trainer.checkpoint_every_s, saved=recorder.flush, check=nonfinite.check)
    callbacks: list[Callback] = [stopwatch, nonfinite, recorder, best, last]
    if cfg.trainer.progress_bar:
        callbacks.append(ProgressBar() if live_progress() else EpochLines())
    early = None
    if cfg.trainer.early_stopping and validate:
        early = RankedEarlyStopping(task, cfg.trainer.early_stopping, lambda: recorder.rows)
        callbacks.append(early)
    io = AtomicCheckpointIO(held=("best.ckpt",))
    return Callbacks(stopwatch, recorder, best, last, early, io, callbacks)


def build_trainer(cfg: Config, checkpoint_dir: Path, callbacks: Callbacks, validate: bool = True) -> pl.Trainer:
    t = cfg.trainer
    val_batches = (t.limit_batches or 1.0) if validate else 0  # 1.0: every batch; 0: no validation loop
    return pl.Trainer(
        max_epochs=t.max_epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        use_distributed_sampler=False,  # the datamodule shards: val unpadded, batch_size global
        precision=PRECISION[t.precision],
        deterministic=t.deterministic,
        logger=False,  # MLflow logging is EpochRecorder's: once an epoch, resumable
        callbacks=callbacks.all,
        gradient_clip_val=t.gradient_clip,
        plugins=[callbacks.checkpoint_io],
        enable_progress_bar=t.progress_bar and live_progress(),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_train_batches=t.limit_batches or 1.0,  # 1.0: every batch
        limit_val_batches=val_batches,
        default_root_dir=checkpoint_dir,
    )
