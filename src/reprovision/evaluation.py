"""Evaluation of the best checkpoint on the test split, per task: metrics, predictions per row,
and (classification) the confusion matrix and per-class metrics or (regression) the largest
errors; written as files and logged to the run's MLflow run.

metrics/eval.json for every task; tables in metrics/evaluation/ (one row per test example:
predictions.csv or predicted_values.csv), figures in metrics/figures/ (`dvc plots show` shows
every image there)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics.functional import mean_absolute_error, mean_squared_error, r2_score
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from reprovision import plots, tracking
from reprovision.data.datamodule import NormalisedDataModule
from reprovision.files import atomic_file, write_csv, write_json
from reprovision.models.module import Model, load_model
from reprovision.tasks import CLASSIFICATION, REGRESSION


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor, classes: list[str]) -> dict:
    """Test metrics from logits: accuracy, macro-F1, loss, per-class precision/recall, matrix."""
    k = len(classes)
    per_class = {
        "precision": multiclass_precision(logits, targets, k, average="none", zero_division=0),
        "recall": multiclass_recall(logits, targets, k, average="none", zero_division=0),
        "f1": multiclass_f1_score(logits, targets, k, average="none", zero_division=0),
    }
    support = torch.bincount(targets, minlength=k)
    return {
        "test/acc": multiclass_accuracy(logits, targets, k, average="micro").item(),
        "test/f1_macro": multiclass_f1_score(logits, targets, k, average="macro").item(),
        "test/loss": F.cross_entropy(logits, targets).item(),
        "per_class": [
            {
                "class": name,
                **{m: v[i].item() for m, v in per_class.items()},
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        ],
        "confusion_matrix": multiclass_confusion_matrix(logits, targets, k).tolist(),
    }


def regression_metrics(predicted: torch.Tensor, actual: torch.Tensor) -> dict:
    """Test metrics of predicted values, in the target's units: MAE, MSE, RMSE and R²."""
    mse = mean_squared_error(predicted, actual).item()
    return {
        "test/mae": mean_absolute_error(predicted, actual).item(),
        "test/mse": mse,
        "test/rmse": mse**0.5,
        "test/r2": r2_score(predicted, actual).item(),
    }


LARGEST_ERRORS = 20  # rows of metrics/evaluation/largest_errors.csv


def evaluate(
    model_dir: Path,
    run_file: Path,
    data_dir: Path,
    out_dir: Path,
    accelerator: str,
    tta: bool = False,
    batch_size: int = 1024,
    loader: str = "device",
    tracking_uri: str | None = None,
    limit_batches: int | None = None,
) -> dict:
    """Test metrics of `model_dir`'s checkpoint, written to `out_dir` and logged to the MLflow
    run recorded in `run_file` (`tracking_uri`, the configured store, supplies its credentials); `tta`
    averages each image's and its mirror's predicted probabilities."""
    module = load_model(model_dir / "model.ckpt")
    module.flip_tta = tta
    outputs, targets = predict_test(module, data_dir, accelerator, batch_size, loader, limit_batches)
    if module.task.name == "classification":
        headline, logged = write_classification(out_dir, outputs, targets, module.hparams.classes)
    else:
        headline, logged = write_regression(out_dir, outputs, targets, module.hparams.target or "target")
    run = tracking.recorded_run(run_file, "evaluate", tracking_uri)
    if run is None:
        return headline
    run.log_metrics({**headline, **logged})
    written = [out_dir / "eval.json", *sorted((out_dir / "evaluation").iterdir())]
    for path in [*written, *sorted((out_dir / "figures").iterdir())]:
        run.log_artifact(path, "evaluation")
    return headline


def predict_test(module: Model, data_dir: Path, accelerator: str, batch_size: int, loader: str, limit_batches=None):
    """The outputs (logits, or predicted values) and targets of the test split (its first
    `limit_batches` batches in a smoke run; else all of it), through Lightning's predict loop."""
    datamodule = NormalisedDataModule(data_dir, batch_size, loader=loader, eval_batch_size=batch_size)
    trainer = pl.Trainer(
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_predict_batches=limit_batches or 1.0,
    )
    outputs = torch.cat(trainer.predict(module, datamodule=datamodule)).float().cpu()
    return outputs, datamodule.datasets["test"].tensors[1][: len(outputs)].cpu()  # in order: a sequential sampler


def write_classification(out_dir: Path, logits, targets, classes: list[str]) -> tuple[dict, dict]:
    """eval.json, predictions.csv, the confusion matrix (JSON and PNG) and per_class.csv; returns
    the headline and the per-class metrics MLflow also gets."""
    results = classification_metrics(logits, targets, classes)
    headline = {k: results[k] for k in ("test/acc", "test/f1_macro", "test/loss")}
    probs = logits.softmax(dim=1).numpy()
    predicted = probs.argmax(axis=1)
    matrix = np.array(results["confusion_matrix"])
    tables, figures = out_dir / "evaluation", out_dir / "figures"
    for d in (tables, figures):
        d.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "eval.json", headline)
    write_json(tables / "confusion_matrix.json", {"classes": classes, "matrix": matrix.tolist()})
    write_csv(tables / "per_class.csv", results["per_class"], ["class", "precision", "recall", "f1", "support"])
    prob_cols = [f"p_{c}" for c in classes]
    rows = [
        {
            "index": i,
            "actual": classes[int(t)],
            "predicted": classes[int(p)],
            "confidence": f"{probs[i, p]:.6f}",
            **{col: f"{v:.6f}" for col, v in zip(prob_cols, probs[i], strict=True)},
        }
        for i, (t, p) in enumerate(zip(targets.tolist(), predicted, strict=True))
    ]
    write_csv(tables / f"{CLASSIFICATION.rows}.csv", rows, ["index", "actual", "predicted", "confidence", *prob_cols])
    write_png(figures / "confusion_matrix.png", plots.confusion_figure(matrix, classes, normalise=True))
    per_class = {f"test/{m}/{r['class']}": r[m] for r in results["per_class"] for m in ("precision", "recall")}
    return headline, per_class


def write_regression(out_dir: Path, predicted, actual, target: str) -> tuple[dict, dict]:
    """eval.json, predicted_values.csv (every test row's value, prediction and error), the largest
    errors, and the predicted-vs-actual and residual figure."""
    headline = regression_metrics(predicted, actual)
    tables, figures = out_dir / "evaluation", out_dir / "figures"
    for d in (tables, figures):
        d.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "eval.json", headline)
    rows = [
        {"index": i, "actual": f"{a:.6g}", "predicted": f"{p:.6g}", "error": f"{p - a:.6g}"}
        for i, (a, p) in enumerate(zip(actual.tolist(), predicted.tolist(), strict=True))
    ]
    write_csv(tables / f"{REGRESSION.rows}.csv", rows, ["index", "actual", "predicted", "error"])
    largest = sorted(rows, key=lambda r: (-abs(float(r["error"])), r["index"]))[:LARGEST_ERRORS]
    write_csv(tables / "largest_errors.csv", largest, ["index", "actual", "predicted", "error"])
    figure = plots.predicted_vs_actual_figure(actual.numpy(), predicted.numpy(), target)
    write_png(figures / "predicted_vs_actual.png", figure)
    return headline, {}


def write_png(path: Path, figure) -> None:
    with atomic_file(path) as tmp:
        tmp.write_bytes(plots.png_bytes(figure))
