"""After a fit: the summary metrics, the stage's outputs, and what goes to MLflow (metrics,
checkpoints, the servable model, the registry)."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from reprovision import tracking
from reprovision.config import Config
from reprovision.files import atomic_dir, load_arrays, write_csv, write_json
from reprovision.training.callbacks import CURVE_COLUMNS
from reprovision.training.checkpoints import CHECKPOINTS
from reprovision.training.paths import TrainPaths


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    """The best epoch's metrics: the first epoch with the highest val/acc, as `best.ckpt` holds."""
    best = max(rows, key=lambda r: r["val/acc"])
    summary = {k: best[k] for k in ("val/acc", "val/loss", "train/acc", "train/loss")}
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
    write_csv(paths.curves, rows, CURVE_COLUMNS)


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
    run.log_artifact(paths.curves, "metrics")
    for name in CHECKPOINTS:
        run.log_artifact(paths.checkpoints / name, "checkpoints")


def log_model(cfg: Config, run: tracking.PipelineRun, paths: TrainPaths, classes: list[str], val_acc: float) -> None:
    """The best checkpoint as an MLflow model (`runs:/<id>/model`), registered if configured."""
    example = example_png(paths.summary.parent / "val.npz")
    model_uri = tracking.log_classifier(run, paths.out / "model.ckpt", classes, example)
    print(f"train: MLflow model runs:/{run.run_id}/model (serve: mlflow models serve -m ...)")
    if cfg.tracking.registered_model and not cfg.trainer.limit_batches:  # a smoke run is never a champion
        print("train: " + tracking.register_classifier(run, model_uri, cfg.tracking.registered_model, val_acc))


def log_timing(run: tracking.PipelineRun, timing: dict[str, float], path: Path | None) -> None:
    run.log_metrics({f"time/{k}": v for k, v in timing.items()})
    if path is not None:
        write_json(path, timing)
    print(
        "train: time {total_s:.1f} s: start-up {startup_s:.1f} s, compile {compile_s:.1f} s, "
        "training {train_s:.1f} s ({train_images_per_s:.0f} images/s)".format(**timing)
    )


def example_png(split_file: Path) -> bytes:
    """The first image of a split as a PNG file: the MLflow model's input example."""
    from PIL import Image

    image = load_arrays(split_file)["x"][0]
    buf = io.BytesIO()
    Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)).save(buf, format="PNG")
    return buf.getvalue()
