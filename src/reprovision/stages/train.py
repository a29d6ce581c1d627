"""train stage: fit the configured net with Lightning, tracked in MLflow, resumable after a kill.

The checkpoint directory persists across runs (DVC `persist`). `last.ckpt` holds the model,
optimizer, scheduler, loop position, the torch RNG and every finished epoch's metrics; with it
`resume.json` records the run's fingerprint (config + data) and MLflow run. Rerunning the stage
with the same fingerprint resumes there, in the same MLflow run, and ends with the same
metrics as an uninterrupted run; any other config starts afresh.

`last.ckpt` is written at the end of the first epoch that ends `trainer.checkpoint_every_s`
seconds after the previous write, and of the final epoch; the epoch rows it holds then go to
MLflow. Sub-second epochs (small data, a GPU) do not pay a checkpoint and a database write
each; a kill loses at most that many seconds of training, plus the epoch under way.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_utilities.core.apply_func import apply_to_collection
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint, TQDMProgressBar
from torch.distributed import ReduceOp

from reprovision import tracking
from reprovision.cli import STARTED
from reprovision.config import Config, load_config
from reprovision.data.datamodule import NormalisedDataModule
from reprovision.errors import ConfigError, StageFailed
from reprovision.files import atomic_dir, atomic_file, load_arrays, read_json, sha256_file, write_json
from reprovision.models.system import ImageClassifier

CURVE_COLUMNS = ("epoch", "train/loss", "train/acc", "val/loss", "val/acc", "train/lr")
PRECISION = {"32": "32-true", "bf16-mixed": "bf16-mixed", "16-mixed": "16-mixed"}
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


class LastCheckpoint(ModelCheckpoint):
    """`last.ckpt` at the end of the final epoch and of the first epoch `every_s` seconds after
    the previous save (every epoch with 0); `saved()` runs after each save."""

    def __init__(self, dirpath: Path, every_s: float, saved) -> None:
        super().__init__(dirpath=dirpath, filename="last", save_on_train_epoch_end=True, enable_version_counter=False)
        self.every_s, self.saved = every_s, saved

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.due = time.monotonic() + self.every_s

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Runs after EarlyStopping (Lightning calls checkpoint callbacks last): should_stop is set.
        final = trainer.current_epoch + 1 >= trainer.max_epochs or trainer.should_stop
        # Every process decides as the first does: a save waits for all of them at a barrier.
        if trainer.strategy.broadcast(final or time.monotonic() >= self.due):
            super().on_train_epoch_end(trainer, pl_module)
            self.due = time.monotonic() + self.every_s
            self.saved()


class EpochRecorder(Callback):
    """Epoch metrics: saved in every checkpoint, logged to MLflow once `last.ckpt` holds them.

    `flush()` runs after each write of `last.ckpt` (and at the end of training), so a kill at
    any moment leaves no epoch logged twice: a resumed run logs exactly the rows MLflow does
    not have yet.
    """

    def __init__(self) -> None:
        self.run: tracking.PipelineRun | None = None  # None on every process but the first
        self.logged = 0  # epochs already in MLflow
        self.rows: list[dict[str, float]] = []

    def track(self, run: tracking.PipelineRun, logged: int) -> None:
        self.run, self.logged = run, logged

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Runs before ModelCheckpoint (a monitoring callback) saves this epoch.
        metrics = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch + 1}
        row.update({k: float(metrics[k]) for k in CURVE_COLUMNS[1:] if k in metrics})
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

    def state_dict(self) -> dict[str, Any]:
        # The RNG as of the end of this epoch: the next epoch's shuffle and dropout match an
        # uninterrupted run's.
        return {
            "rows": self.rows,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = list(state["rows"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])


class NonFiniteLoss(Callback):
    """Fail the stage on a NaN or infinite training loss, naming the first such step.

    A step only keeps its loss (no device op: a check per step cost more host time than a small
    net's step on a CPU, and a GPU must not wait for the host); the host reads the epoch's check
    once, at its end, before that epoch's checkpoint is written, so no checkpoint holds a
    diverged model.
    """

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.first_step = trainer.global_step
        self.losses: list[torch.Tensor] = []  # this epoch's, on the device
        self.batches: list[int] = []  # their batch indices

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append((outputs["loss"] if isinstance(outputs, dict) else outputs).detach())
        self.batches.append(batch_idx)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
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
                "the last good checkpoint is kept"
            )


class ResumableEarlyStopping(EarlyStopping):
    """EarlyStopping whose stop survives a resume. Lightning restores its counters from the
    checkpoint but not the Trainer's `should_stop`: a run killed after its early-stopped final
    checkpoint (while its model goes to MLflow) would train on past the stop when resumed."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if self.stopped_epoch > 0:  # restored from a checkpoint saved after the stop
            trainer.should_stop = True


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
    fit, over all data-parallel processes (a resumed run counts only what it trained)."""

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
        images = self.images * trainer.world_size  # equal shards: every process takes the same steps
        self.seconds.update({"compile_s": compiling, "train_s": fit - compiling, "train_images": images})


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


def write_curves(path: Path, rows: list[dict[str, float]]) -> None:
    with atomic_file(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CURVE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def fingerprint(cfg: Config, data_dir: Path) -> str:
    """What a checkpoint must match to be resumed: everything that shapes training."""
    ignored = ("progress_bar", "checkpoint_every_s")  # neither changes what is trained
    trainer = {k: v for k, v in dataclasses.asdict(cfg.trainer).items() if k not in ignored}
    settings = {
        "seed": cfg.seed,
        "batch_size": cfg.data.batch_size,
        "loader": cfg.data.loader,  # the two paths draw their shuffles differently
        "augment": [cfg.data.crop_padding, cfg.data.flip],
        "model": dataclasses.asdict(cfg.model),
        "optim": dataclasses.asdict(cfg.optim),
        "trainer": trainer,
    }
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for path in sorted(data_dir.iterdir()):
        h.update(path.name.encode() + sha256_file(path).encode())
    return h.hexdigest()


def recipe(cfg: Config) -> str:
    """The training recipe in one line, for the MLflow run list (`cnn adam lr=0.001 constant bs=64 30ep 32`)."""
    o, t, d = cfg.optim, cfg.trainer, cfg.data
    parts = [cfg.model.name, o.name, f"lr={o.lr:g}", o.schedule]
    parts += [f"warmup={o.warmup_epochs:g}ep"] if o.warmup_epochs else []
    parts += [f"wd={o.weight_decay:g}"] if o.weight_decay else []
    parts += [f"ls={t.label_smoothing:g}"] if t.label_smoothing else []
    parts += [f"clip={t.gradient_clip:g}"] if t.gradient_clip else []
    parts += [f"crop{d.crop_padding}"] if d.crop_padding else []
    parts += ["flip"] if d.flip else []
    parts += [f"bs={d.batch_size}", f"{t.max_epochs}ep", t.precision]
    return " ".join(parts)


def check_environment(cfg: Config) -> None:
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        raise ConfigError(
            "trainer.accelerator=gpu but no GPU is available (torch.cuda.is_available() is False); "
            "use -S trainer.accelerator=auto or cpu"
        )
    processes = cfg.trainer.devices * cfg.trainer.num_nodes
    if processes > 1 and cfg.trainer.strategy != "ddp":
        raise ConfigError(
            f"trainer.devices={cfg.trainer.devices} x trainer.num_nodes={cfg.trainer.num_nodes} processes need "
            "trainer.strategy=ddp; or set trainer.devices=1"
        )
    if processes > 1 and cfg.split.folds:
        raise ConfigError(f"split.folds={cfg.split.folds} cross-validates in one process; set trainer.devices=1")


def train(
    cfg: Config,
    params_path: Path,
    data_dir: Path,
    split_summary: Path,
    checkpoint_dir: Path,
    out_dir: Path,
    metrics_path: Path,
    curves_path: Path,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    timing_path: Path | None = None,
    started: float | None = None,
) -> dict | None:
    """Train (or resume); write the best checkpoint and run id to `out_dir`, metrics, curves,
    and where the time went to `timing_path` (seconds since `started`, default: now).
    Returns the summary metrics, or None in every data-parallel process but the first."""
    stopwatch = Stopwatch(time.perf_counter() if started is None else started)
    check_environment(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    d = cfg.data
    datamodule = NormalisedDataModule(data_dir, d.batch_size, d.num_workers, cfg.seed, d.loader, d.eval_batch_size)
    stats = datamodule.stats
    module = ImageClassifier(
        net=dataclasses.asdict(cfg.model),
        optim=dataclasses.asdict(cfg.optim),
        classes=stats["classes"],
        image_shape=stats["image_shape"],
        mean=stats["mean"],
        std=stats["std"],
        label_smoothing=cfg.trainer.label_smoothing,
        augment={"crop_padding": cfg.data.crop_padding, "flip": cfg.data.flip},
    )
    speed_up(module.net, cfg.trainer.channels_last, cfg.trainer.compile)

    # Both save at the training epoch's end, after EpochRecorder has the epoch's row. `last` is its
    # own callback (no monitor, replacing the previous): ModelCheckpoint's save_last writes only in
    # epochs that improved the monitored metric, so a kill after a run of epochs without a better
    # val/acc would resume from the last improvement and redo them.
    recorder = EpochRecorder()
    checkpoint_io = AtomicCheckpointIO(held=("best.ckpt",))
    checkpoint = ModelCheckpoint(
        dirpath=checkpoint_dir,
        filename="best",
        monitor="val/acc",
        mode="max",
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )
    last_checkpoint = LastCheckpoint(checkpoint_dir, cfg.trainer.checkpoint_every_s, saved=recorder.flush)
    callbacks: list[Callback] = [stopwatch, NonFiniteLoss(), recorder, checkpoint, last_checkpoint]
    callbacks += [ProgressBar()] if cfg.trainer.progress_bar else []
    early = None
    if cfg.trainer.early_stopping:
        # check_finite: a NaN val/acc stops training too; below that is a failure, not a success.
        early = ResumableEarlyStopping(
            monitor="val/acc", mode="max", patience=cfg.trainer.early_stopping, check_finite=True
        )
        callbacks.append(early)
    trainer = pl.Trainer(
        max_epochs=cfg.trainer.max_epochs,
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        num_nodes=cfg.trainer.num_nodes,
        strategy=cfg.trainer.strategy,
        use_distributed_sampler=False,  # the datamodule shards: val unpadded, batch_size global
        precision=PRECISION[cfg.trainer.precision],
        deterministic=cfg.trainer.deterministic,
        logger=False,  # MLflow logging is EpochRecorder's: once an epoch, resumable
        callbacks=callbacks,
        gradient_clip_val=cfg.trainer.gradient_clip,
        plugins=[checkpoint_io],
        enable_progress_bar=cfg.trainer.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=checkpoint_dir,
    )
    # Under data-parallel training every process runs this function (Lightning's launcher starts
    # the others with the same command; torchrun and SLURM start them all). Only the first process
    # (global rank 0) writes: the MLflow run, resume.json, the outputs. Every process reaches the
    # same resume decision from the same files, whichever order they read them in.
    leader = trainer.is_global_zero
    resume_file, last = checkpoint_dir / "resume.json", checkpoint_dir / "last.ckpt"
    key = fingerprint(cfg, data_dir)
    try:
        state = read_json(resume_file)
    except FileNotFoundError:  # none yet, or rank 0 of a torchrun/SLURM start is replacing it now
        state = {}
    resuming = state.get("fingerprint") == key and last.is_file()
    ckpt_path, run = (last if resuming else None), None
    if leader and resuming:
        run = tracking.PipelineRun(state["run"])
        tracking.check_reachable(run.info["tracking_uri"])
        run.set_status("RUNNING")
        recorder.track(run, logged=run.last_step("val/acc"))
        print(f"train: resuming from {last} (MLflow run {run.run_id}, {recorder.logged} epoch(s) logged)")
    elif leader:  # another config, or a finished run: start afresh
        for name in (*CHECKPOINTS, "resume.json"):
            (checkpoint_dir / name).unlink(missing_ok=True)
        run = tracking.PipelineRun.start(cfg, params_path, data_dir, split_summary, run_name, parent_run_id)
        run.log_params({"model.parameter_count": module.parameter_count})
        run.set_tags({"recipe": recipe(cfg)})
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        write_json(resume_file, {"fingerprint": key, "run": run.info})
        recorder.track(run, logged=0)

    try:
        with warnings.catch_warnings():
            # In-memory tensors: DataLoader worker processes would only add start-up time.
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            # The checkpoint directory is ours and kept on purpose (resume.json, last.ckpt).
            warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SystemExit:
        # Lightning ends on SIGTERM with SIGTERMException, a SystemExit with status 0, and on
        # Ctrl-C with sys.exit(1): either way the stage is not done, and must not look done.
        interrupted = True
    except BaseException:
        if run is not None:
            run.set_status("FAILED")
        raise
    else:
        stopped_early = early is not None and early.stopped_epoch > 0
        interrupted = trainer.interrupted or (trainer.current_epoch < cfg.trainer.max_epochs and not stopped_early)
    if early is not None and not math.isfinite(float(trainer.callback_metrics.get("val/acc", 0.0))):
        if run is not None:
            run.set_status("FAILED")
        raise StageFailed("val/acc is not finite: early stopping ended training; the last good checkpoint is kept")
    if interrupted:
        if run is not None:
            run.set_status("KILLED")
        raise StageFailed(
            f"training stopped by a signal in epoch {trainer.current_epoch + 1} of {cfg.trainer.max_epochs}; "
            "rerun the stage to resume from the last checkpoint"
        )

    if not leader:
        return None  # rank 0 writes the outputs and finishes the MLflow run
    checkpoint_io.write_held()  # written with the final last.ckpt, unless training ended otherwise
    rows = recorder.rows
    best = max(rows, key=lambda r: r["val/acc"])  # first epoch with the best val/acc
    summary = {k: best[k] for k in ("val/acc", "val/loss", "train/acc", "train/loss")}
    summary.update({"best_epoch": best["epoch"], "epochs": len(rows)})
    if cfg.split.folds:
        from reprovision.crossval import cross_validate

        summary.update(cross_validate(cfg, params_path, split_summary.parent, run.run_id))
    with atomic_dir(out_dir) as tmp:
        shutil.copyfile(checkpoint.best_model_path, tmp / "model.ckpt")
        write_json(tmp / "run.json", run.info)
    write_json(metrics_path, summary)
    write_curves(curves_path, rows)
    run.log_metrics({f"best/{k}": v for k, v in summary.items()})
    run.log_artifact(curves_path, "metrics")
    for name in CHECKPOINTS:
        run.log_artifact(checkpoint_dir / name, "checkpoints")
    if parent_run_id is None:  # sweep trials and folds are compared in MLflow, not served
        try:
            example = example_png(split_summary.parent / "val.npz")
            model_uri = tracking.log_classifier(run, out_dir / "model.ckpt", stats["classes"], example)
            print(f"train: MLflow model runs:/{run.run_id}/model (serve: mlflow models serve -m ...)")
            if cfg.tracking.registered_model:
                name, val_acc = cfg.tracking.registered_model, summary["val/acc"]
                print("train: " + tracking.register_classifier(run, model_uri, name, val_acc))
        except BaseException:
            run.set_status("FAILED")  # logging the model ends MLflow's run as FINISHED: not so
            raise
    timing = {**stopwatch.seconds, "total_s": time.perf_counter() - stopwatch.started}
    timing["train_images_per_s"] = timing["train_images"] / timing["train_s"] if timing["train_s"] else 0.0
    run.log_metrics({f"time/{k}": v for k, v in timing.items()})
    if timing_path is not None:
        write_json(timing_path, timing)
    print(
        "train: time {total_s:.1f} s: start-up {startup_s:.1f} s, compile {compile_s:.1f} s, "
        "training {train_s:.1f} s ({train_images_per_s:.0f} images/s)".format(**timing)
    )
    run.set_status("FINISHED")
    resume_file.unlink()  # finished: the next run of this stage starts afresh
    return summary


def example_png(split_file: Path) -> bytes:
    """The first image of a split as a PNG file: the MLflow model's input example."""
    from PIL import Image

    image = load_arrays(split_file)["x"][0]
    buf = io.BytesIO()
    Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)).save(buf, format="PNG")
    return buf.getvalue()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="resolved config")
    parser.add_argument("--data", required=True, type=Path, help="normalised data directory")
    parser.add_argument("--summary", required=True, type=Path, help="the split stage's summary.json")
    parser.add_argument(
        "--checkpoints", required=True, type=Path, help="best/last checkpoints, kept across runs for resuming"
    )
    parser.add_argument("--out", required=True, type=Path, help="model directory to write (model.ckpt, run.json)")
    parser.add_argument("--metrics", required=True, type=Path, help="summary metrics JSON")
    parser.add_argument("--curves", required=True, type=Path, help="per-epoch curves CSV")
    parser.add_argument("--timing", type=Path, help="where the stage's time went (JSON): start-up, compile, training")


def run(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)
    summary = train(
        cfg,
        Path(args.params),
        args.data,
        args.summary,
        args.checkpoints,
        args.out,
        args.metrics,
        args.curves,
        timing_path=args.timing,
        started=STARTED,
    )
    if summary is not None:
        print(
            f"train: best val/acc {summary['val/acc']:.4f} at epoch {summary['best_epoch']} "
            f"of {summary['epochs']} -> {args.out}"
        )
