"""The fit: build, resume or start, train, publish. `train` reads as the table of contents."""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytorch_lightning as pl

from reprovision import tracking
from reprovision.config import Config
from reprovision.errors import StageFailed
from reprovision.tracking.system import system_metrics
from reprovision.training import publish, resume
from reprovision.training.build import (
    Callbacks,
    build_callbacks,
    build_datamodule,
    build_module,
    build_trainer,
)
from reprovision.training.callbacks import checkpoint_note
from reprovision.training.paths import TrainPaths
from reprovision.training.preflight import check_devices, check_memory
from reprovision.training.timing import Stopwatch

# The MLflow run id -> metrics added to the summary, under "per_epoch" {epoch: {name: value}}
# columns added to the curves (and logged per epoch), and under "model" a checkpoint to publish
# instead of the best epoch's (a refit's).
AfterFit = Callable[[str], dict]


class Interrupted(StageFailed):
    """Training stopped by a signal (Ctrl-C, SIGTERM): rerunning the stage resumes it."""


def train(
    cfg: Config,
    paths: TrainPaths,
    *,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    started: float | None = None,
    after_fit: AfterFit | None = None,
    validate: bool = True,
) -> dict | None:
    """Train (or resume) and publish: the best checkpoint and its MLflow run to `paths.out`, the
    summary metrics, the curves, where the time went (seconds since `started`, default: now).

    `after_fit(run_id)` runs once training is done, before anything is written (cross-validation
    hands its folds' metrics over here). A run with a `parent_run_id` (a fold, a sweep trial) is
    compared in MLflow, not served: no MLflow model is logged for it. Without `validate` (a
    refit on train + val) no validation runs and the final epoch's model is the one kept.
    Returns the summary metrics, or None in every data-parallel process but the first.
    """
    if cfg.split.folds and after_fit is None:
        raise ValueError("split.folds is set: train through crossval.train_and_cross_validate")
    stopwatch = Stopwatch(time.perf_counter() if started is None else started)
    device = check_devices(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg, paths.summary.parent, paths.data)
    stats = datamodule.stats
    check_memory(cfg, stats["inputs"], len(stats["classes"]) or 1, device)  # the data's own size, not a floor
    module = build_module(cfg, stats)
    callbacks = build_callbacks(cfg, paths.checkpoints, stopwatch, validate)
    trainer = build_trainer(cfg, paths.checkpoints, callbacks, validate)
    # Under data-parallel training every process runs this function (Lightning's launcher starts
    # the others with the same command; torchrun and SLURM start them all). Only the first process
    # (global rank 0) writes: the MLflow run, resume.json, the outputs.
    leader = trainer.is_global_zero
    start = resume.resume_or_start(cfg, paths, leader, module.parameter_count, run_name, parent_run_id)
    if start.run is not None:
        start.run.record_numerics("train")
        callbacks.recorder.track(start.run, start.logged)
    sampled = start.run if cfg.tracking.system_metrics else None
    with tracked(start.run):
        with system_metrics(sampled, cfg.tracking.system_metrics_every_s, resumed=start.checkpoint is not None):
            fit(trainer, module, datamodule, start.checkpoint, callbacks)
        if not leader:
            return None
        summary = conclude(cfg, paths, start.run, callbacks, datamodule.stats["classes"], after_fit, parent_run_id)
    resume.finished(paths.checkpoints)
    return summary


@contextlib.contextmanager
def tracked(run: tracking.PipelineRun | None) -> Iterator[None]:
    """The MLflow run's status follows the block: KILLED when a signal stopped it, FAILED on any
    other error, FINISHED when it ends. MLflow's own model logging marks a run FINISHED; an error
    after it must still read FAILED."""
    if run is None:
        yield
        return
    try:
        yield
    except (Interrupted, KeyboardInterrupt):
        run.set_status("KILLED")
        raise
    except BaseException:
        run.set_status("FAILED")
        raise
    run.set_status("FINISHED")


def fit(trainer: pl.Trainer, module: pl.LightningModule, datamodule, checkpoint: Path | None, callbacks: Callbacks):
    """Lightning's fit, from `checkpoint` if resuming. Raises Interrupted when a signal stopped
    it, StageFailed when early stopping ended it on a monitored metric that is not finite."""
    try:
        with warnings.catch_warnings():
            # In-memory tensors: DataLoader worker processes would only add start-up time.
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            # The checkpoint directory is ours and kept on purpose (resume.json, last.ckpt).
            warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
            trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True)
    except SystemExit:
        # Lightning ends on SIGTERM with SIGTERMException, a SystemExit with status 0, and on
        # Ctrl-C with sys.exit(1): either way the stage is not done, and must not look done.
        interrupted = True
    else:
        early = callbacks.early
        stopped_early = early is not None and early.stopped_epoch > 0
        interrupted = trainer.interrupted or (trainer.current_epoch < trainer.max_epochs and not stopped_early)
    monitor = callbacks.best.monitor
    if callbacks.early is not None and not math.isfinite(float(trainer.callback_metrics.get(monitor, 0.0))):
        raise StageFailed(f"{monitor} is not finite: early stopping ended training; {checkpoint_note(trainer)}")
    if interrupted:
        raise Interrupted(
            f"training stopped by a signal in epoch {trainer.current_epoch + 1} of {trainer.max_epochs}; "
            "rerun the stage to resume from the last checkpoint"
        )


def conclude(
    cfg: Config,
    paths: TrainPaths,
    run: tracking.PipelineRun,
    callbacks: Callbacks,
    classes: list[str],
    after_fit: AfterFit | None,
    parent_run_id: str | None,
) -> dict:
    """The first process's work after a complete fit: summary, outputs, MLflow."""
    callbacks.checkpoint_io.write_held()  # written with the final last.ckpt, unless training ended otherwise
    rows = callbacks.recorder.rows
    summary = publish.summarise(rows, cfg.data.task_spec)
    best_model = Path(callbacks.best.best_model_path)
    if after_fit is not None:
        added = after_fit(run.run_id)
        per_epoch = added.pop("per_epoch", {})
        best_model = added.pop("model", best_model)
        rows = [{**r, **per_epoch.get(int(r["epoch"]), {})} for r in rows]
        run.log_steps(per_epoch)
        summary.update(added)
    publish.write_outputs(paths, best_model, run, summary, rows)
    publish.log_results(run, paths, summary)
    if parent_run_id is None:  # sweep trials and folds are compared in MLflow, not served
        publish.log_model(cfg, run, paths, summary)
    publish.log_timing(run, callbacks.stopwatch.report(), paths.timing)
    return summary
