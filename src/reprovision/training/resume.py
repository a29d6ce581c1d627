"""Resuming after a kill: what a checkpoint must match, and which MLflow run to continue.

`checkpoints/resume.json` records the run's fingerprint (config + data) and MLflow run beside
`last.ckpt`. Rerunning the stage with the same fingerprint resumes there, in the same MLflow
run, and ends with the same metrics as an uninterrupted run; any other config starts afresh.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from reprovision import tracking
from reprovision.config import Config
from reprovision.errors import BadInput
from reprovision.files import read_json, sha256_file, write_json
from reprovision.models.predictor import load_checkpoint
from reprovision.tracking.datasets import log_split_inputs
from reprovision.training.checkpoints import CHECKPOINTS
from reprovision.training.paths import TrainPaths

RESUME_FILE = "resume.json"


def fingerprint(cfg: Config, split_dir: Path, data_dir: Path) -> str:
    """What a checkpoint must match to be resumed: everything that shapes training, the split's
    files and the normalise stage's fit among them."""
    # Neither changes what is trained; nor does data.loader (both paths draw the same batches).
    ignored = ("progress_bar", "checkpoint_every_s")
    trainer = {k: v for k, v in dataclasses.asdict(cfg.trainer).items() if k not in ignored}
    settings = {
        "seed": cfg.seed,
        "batch_size": cfg.data.batch_size,
        "augment": [cfg.data.crop_padding, cfg.data.flip, cfg.data.crop_scale],
        "model": dataclasses.asdict(cfg.model),
        "optim": dataclasses.asdict(cfg.optim),
        "trainer": trainer,
    }
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for top in (split_dir, data_dir):  # every file, the shards in each split's directory among them
        for path in sorted(top.rglob("*")):
            if path.is_file():
                h.update(path.relative_to(top).as_posix().encode() + sha256_file(path).encode())
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


@dataclass
class Start:
    """Where a fit starts: `checkpoint` to resume from (None: afresh), the MLflow `run` to log
    into (None on every data-parallel process but the first) and its epochs already logged."""

    checkpoint: Path | None
    run: tracking.PipelineRun | None
    logged: int = 0


def resume_or_start(
    cfg: Config, paths: TrainPaths, leader: bool, parameters: int, name: str | None, parent_run_id: str | None
) -> Start:
    """Resume from `last.ckpt` when `resume.json` holds this config's and data's fingerprint;
    else (another config, or a finished run) start afresh in a new MLflow run.

    Under data-parallel training every process calls this and reaches the same decision from the
    same files, whichever order they read them in; only the first (`leader`) writes or opens a run.
    """
    checkpoint_dir = paths.checkpoints
    resume_file, last = checkpoint_dir / RESUME_FILE, checkpoint_dir / "last.ckpt"
    key = fingerprint(cfg, paths.summary.parent, paths.data)
    try:
        state = read_json(resume_file)
    except FileNotFoundError:  # none yet, or rank 0 of a torchrun/SLURM start is replacing it now
        state = {}
    resuming = state.get("fingerprint") == key and last.is_file() and loads_safely(last, leader)
    if not leader:
        return Start(last if resuming else None, None)
    if resuming:
        run = tracking.PipelineRun(state["run"], tracking.tracking_uri(cfg))  # its credentials, if any
        tracking.check_reachable(run.uri)
        run.set_status("RUNNING")
        logged = run.last_step(cfg.data.task_spec.monitor)
        print(f"train: resuming from {last} (MLflow run {run.run_id}, {logged} epoch(s) logged)")
        return Start(last, run, logged)
    for stale in (*CHECKPOINTS, RESUME_FILE):
        (checkpoint_dir / stale).unlink(missing_ok=True)
    run = tracking.PipelineRun.start(cfg, paths.params, paths.data, paths.summary, name, parent_run_id)
    run.log_params({"model.parameter_count": parameters})
    # A smoke run (trainer.limit_batches) trains on a few batches: tagged so, never registered.
    run.set_tags({"recipe": recipe(cfg), **({"smoke": "true"} if cfg.trainer.limit_batches else {})})
    log_split_inputs(run, paths.summary.parent, read_json(paths.summary))
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    write_json(resume_file, {"fingerprint": key, "run": run.info})
    return Start(None, run)


def loads_safely(last: Path, leader: bool) -> bool:
    """Whether `last.ckpt` loads as Lightning will load it (weights_only=True). One that does not
    (truncated, or it would run code) is reported in one line and set aside as last.ckpt.refused
    by the first process, so that no later run meets it again; training then starts afresh."""
    try:
        load_checkpoint(last)
    except BadInput as e:
        if leader:
            refused = last.with_name(f"{last.name}.refused")
            os.replace(last, refused)
            print(f"train: {e}; set aside as {refused}, training starts afresh", file=sys.stderr)
        return False
    return True


def finished(checkpoint_dir: Path) -> None:
    """The run is complete: the next run of the stage starts afresh."""
    (checkpoint_dir / RESUME_FILE).unlink()
