"""Evaluation of the best checkpoint on the test split, per task: metrics, predictions per row,
and (classification) the confusion matrix and per-class metrics or (regression) the largest
errors; written as files and logged to the run's MLflow run.

metrics/eval.json for every task; tables in metrics/evaluation/ (one row per test example:
predictions.csv or predicted_values.csv), figures in metrics/figures/ (`dvc plots show` shows
every image there)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from reprovision import plots, tracking
from reprovision.errors import StageFailed
from reprovision.files import atomic_file, load_arrays, write_csv, write_json
from reprovision.models.predictor import Predictor, device_for, load_predictor
from reprovision.tasks import CLASSIFICATION, REGRESSION

# The test metrics are computed here with torch, as torchmetrics defines them (tests/test_evaluation.py
# compares the two): importing torchmetrics costs the stage seconds of start-up (it imports
# torchvision's models and scipy.signal); computing them takes microseconds.


def divide(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a / b in floating point, 0 where b is 0 (torchmetrics' zero_division=0)."""
    a, b = a.float(), b.float()
    return torch.where(b == 0, torch.zeros_like(a), a / torch.where(b == 0, torch.ones_like(b), b))


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor, classes: list[str]) -> dict:
    """Test metrics from logits: accuracy, macro-F1 (over the classes that occur in the targets or
    the predictions), loss, per-class precision/recall/F1, the confusion matrix (rows: actual)."""
    k = len(classes)
    matrix = torch.bincount(targets * k + logits.argmax(1), minlength=k * k).reshape(k, k)
    tp = matrix.diagonal()
    fp, fn = matrix.sum(0) - tp, matrix.sum(1) - tp
    per_class = {
        "precision": divide(tp, tp + fp),
        "recall": divide(tp, tp + fn),
        "f1": divide(2 * tp, 2 * tp + fn + fp),
    }
    present = (tp + fp + fn > 0).float()
    support = matrix.sum(1)
    return {
        "test/acc": divide(tp.sum(), support.sum()).item(),
        "test/f1_macro": divide(present * per_class["f1"], present.sum()).sum().item(),
        "test/loss": F.cross_entropy(logits, targets).item(),
        "per_class": [
            {
                "class": name,
                **{m: v[i].item() for m, v in per_class.items()},
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        ],
        "confusion_matrix": matrix.tolist(),
    }


def regression_metrics(predicted: torch.Tensor, actual: torch.Tensor) -> dict:
    """Test metrics of predicted values, in the target's units: MAE, MSE, RMSE and R²."""
    n = len(actual)
    residual = actual - predicted
    mse = (torch.sum(residual * residual) / n).item()
    total = torch.sum(actual)
    spread = torch.sum(actual * actual) - total * (total / n)  # the total sum of squares
    return {
        "test/mae": (torch.sum(torch.abs(predicted - actual)) / n).item(),
        "test/mse": mse,
        "test/rmse": mse**0.5,
        "test/r2": (1 - torch.sum(residual * residual) / spread).item(),
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
    tracking_uri: str | None = None,
    limit_batches: int | None = None,
) -> dict:
    """Test metrics of `model_dir`'s checkpoint, written to `out_dir` and logged to the MLflow
    run recorded in `run_file` (`tracking_uri`, the configured store, supplies its credentials); `tta`
    averages each image's and its mirror's predicted probabilities."""
    module = load_predictor(model_dir / "model.ckpt")
    module.flip_tta = tta
    outputs, targets = predict_test(module, data_dir, accelerator, batch_size, limit_batches)
    if module.task.name == "classification":
        headline, logged = write_classification(out_dir, outputs, targets, module.hparams.classes)
    else:
        headline, logged = write_regression(out_dir, outputs, targets, module.hparams.target or "target")
    run = tracking.recorded_run(run_file, "evaluate", tracking_uri)
    if not all(math.isfinite(v) for v in headline.values()):
        withdrawn = tracking.withdraw_versions(run, module.task) if run is not None else []
        raise StageFailed(
            f"test metrics are not finite ({', '.join(f'{k} {v}' for k, v in headline.items())}): the test split "
            "holds values the model turns into NaN or infinity; check the data"
            + (f"; withdrawn from the registry: {', '.join(withdrawn)}" if withdrawn else "")
        )
    if run is None:
        return headline
    run.record_numerics("evaluate")
    run.log_metrics({**headline, **logged})
    written = [out_dir / "eval.json", *sorted((out_dir / "evaluation").iterdir())]
    for path in [*written, *sorted((out_dir / "figures").iterdir())]:
        run.log_artifact(path, "evaluation")
    return headline


def predict_test(module: Predictor, data_dir: Path, accelerator: str, batch_size: int, limit_batches=None):
    """The outputs (logits, or predicted values) and targets of the test split (its first
    `limit_batches` batches in a smoke run; else all of it), in order, a batch at a time."""
    arrays = load_arrays(data_dir / "test.npz")
    x, y = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"])
    rows = min(len(x), limit_batches * batch_size) if limit_batches else len(x)
    device = device_for(accelerator)
    module.to(device).eval()
    with torch.inference_mode():
        batches = [
            module.predict_step((x[i : min(i + batch_size, rows)].to(device),)) for i in range(0, rows, batch_size)
        ]
    return torch.cat(batches).float().cpu(), y[:rows]


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
    # Class names are data: MLflow refuses `c++` in a metric name. per_class.csv maps each class to
    # its part of the MLflow names (test/precision/<mlflow_name>, test/recall/<mlflow_name>).
    keys = tracking.metric_name_parts(classes)
    per_class = [{**r, "mlflow_name": key} for r, key in zip(results["per_class"], keys, strict=True)]
    write_csv(tables / "per_class.csv", per_class, ["class", "precision", "recall", "f1", "support", "mlflow_name"])
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
    return headline, {f"test/{m}/{r['mlflow_name']}": r[m] for r in per_class for m in ("precision", "recall")}


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
