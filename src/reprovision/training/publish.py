"""After a fit: the summary metrics, the stage's outputs, and what goes to MLflow (metrics,
checkpoints, the servable model, the registry)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from reprovision import tracking
from reprovision.config import Config
from reprovision.data.raw import START
from reprovision.data.shards import Shards
from reprovision.files import atomic_dir, read_json, write_csv, write_json
from reprovision.tasks import Task, validation_note
from reprovision.training.checkpoints import CHECKPOINTS
from reprovision.training.paths import TrainPaths

if TYPE_CHECKING:
    import pandas as pd


def summarise(rows: list[dict[str, float]], task: Task) -> dict[str, float]:
    """The best epoch's metrics: the first epoch with the best monitored metric, as `best.ckpt`
    holds; the final epoch's training metrics for a fit without validation (a refit)."""
    best = task.best(rows) if task.monitor in rows[-1] else rows[-1]
    summary = {k: best[k] for k in task.curve_columns[1:-1] if k in best}
    summary.update({"best_epoch": best["epoch"], "epochs": len(rows)})
    return summary


def write_outputs(
    paths: TrainPaths, best_model: Path, run: tracking.PipelineRun, summary: dict, rows: list[dict]
) -> None:
    """models/model.ckpt (the best epoch's model), the summary, the curves; and the MLflow run,
    for evaluate and report, beside the checkpoints: not in a DVC-hashed output."""
    with atomic_dir(paths.out) as tmp:
        write_model(best_model, tmp / "model.ckpt")
    write_json(paths.checkpoints / tracking.RUN_FILE, run.info)
    write_json(paths.metrics, summary)
    write_csv(paths.curves, rows, list(dict.fromkeys(k for r in rows for k in r)))  # every column, in order


MODEL_KEYS = ("state_dict", "hyper_parameters", "epoch", "global_step", "pytorch-lightning_version")


def write_model(checkpoint: Path, path: Path) -> None:
    """What a model needs of a Lightning checkpoint: weights, hyperparameters (net, classes, the
    training split's statistics) and where in training it was taken. Its bytes are a function of
    config, data and code: no optimizer state, no callback state holding this machine's paths.
    Saved through a file object: torch.save(obj, path) names its archive after the file, and the
    temporary name differs every run."""
    full = torch.load(checkpoint, map_location="cpu", weights_only=True)
    with path.open("wb") as f:
        torch.save({k: full[k] for k in MODEL_KEYS}, f)


def log_results(run: tracking.PipelineRun, paths: TrainPaths, summary: dict) -> None:
    run.log_metrics({f"best/{k}": v for k, v in summary.items()})
    if note := validation_note(read_json(paths.summary)):  # in the run's overview, beside its metrics
        run.set_tags({"validation_note": note})
    run.log_artifact(paths.curves, "metrics")
    for name in CHECKPOINTS:
        run.log_artifact(paths.checkpoints / name, "checkpoints")


def log_model(cfg: Config, run: tracking.PipelineRun, paths: TrainPaths, summary: dict) -> None:
    """The best checkpoint as an MLflow model (`runs:/<id>/model`), registered if configured."""
    stats = read_json(paths.data / "stats.json")
    inputs, outputs = tracking.model_signature(stats)
    example = example_input(paths.summary.parent, stats)
    model_uri = tracking.log_model(run, paths.out / "model.ckpt", inputs, outputs, example)
    print(f"train: MLflow model runs:/{run.run_id}/model (serve: mlflow models serve -m ...)")
    if cfg.tracking.registered_model and not cfg.trainer.limit_batches:  # a smoke run is never a champion
        task = cfg.data.task_spec
        name = cfg.tracking.registered_model
        print("train: " + tracking.register_model(run, model_uri, name, task, summary))


def log_timing(run: tracking.PipelineRun, timing: dict[str, float], path: Path | None) -> None:
    run.log_metrics({f"time/{k}": v for k, v in timing.items()})
    if path is not None:
        write_json(path, timing)
    print(
        "train: time {total_s:.1f} s: start-up {startup_s:.1f} s, compile {compile_s:.1f} s, "
        "training {train_s:.1f} s ({train_images_per_s:.0f} images/s)".format(**timing)
    )


def example_input(split_dir: Path, stats: dict) -> pd.DataFrame:
    """The first validation row as the served model takes it: an image file (PNG, base64), a
    table row's raw feature values, or a document's text."""
    import pandas as pd

    first = Shards(split_dir / "val")[0]
    kind = stats["inputs"]["kind"]
    if kind == "table":
        return pd.DataFrame([dict(zip(stats["inputs"]["features"], map(float, first), strict=True))])
    if kind == "text":
        words = read_json(split_dir / "words.json")
        return pd.DataFrame({"text": [" ".join(words[i] for i in first if i > START)]})
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(first[0] if first.shape[0] == 1 else first.transpose(1, 2, 0)).save(buf, format="PNG")
    return pd.DataFrame({"image": [base64.b64encode(buf.getvalue()).decode()]})
