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

from reprovision import plots, tracking
from reprovision.baseline import baselines, margin
from reprovision.data.normalise import net_shards
from reprovision.data.shards import Shards
from reprovision.errors import StageFailed
from reprovision.files import atomic_file, write_csv, write_json
from reprovision.models.predictor import Predictor, device_for, load_predictor
from reprovision.scoring import classification_metrics, regression_metrics
from reprovision.tasks import CLASSIFICATION, REGRESSION

LARGEST_ERRORS = 20  # rows of metrics/evaluation/largest_errors.csv


def evaluate(
    model_dir: Path,
    run_file: Path,
    split_dir: Path,
    data_dir: Path,
    out_dir: Path,
    accelerator: str,
    tta: bool = False,
    batch_size: int = 1024,
    tracking_uri: str | None = None,
    limit_batches: int | None = None,
    baseline: tuple[int, int] | None = None,
) -> dict:
    """Test metrics of `model_dir`'s checkpoint on the test split (`split_dir`, with the normalise
    stage's `data_dir` for text), written to `out_dir` and logged to the MLflow
    run recorded in `run_file` (`tracking_uri`, the configured store, supplies its credentials); `tta`
    averages each image's and its mirror's predicted probabilities. `baseline` (seed, rows): the
    simplest models' test metrics beside the net's, and the net's margin over the best of them."""
    module = load_predictor(model_dir / "model.ckpt")
    module.flip_tta = tta
    test = net_shards(split_dir, data_dir, "test", module.hparams.inputs["kind"])
    outputs, targets = predict_test(module, test, accelerator, batch_size, limit_batches)
    if module.task.name == "classification":
        headline, logged = write_classification(out_dir, outputs, targets, module.hparams.classes)
    else:
        headline, logged = write_regression(out_dir, outputs, targets, module.hparams.target or "target")
    run = tracking.recorded_run(run_file, "evaluate", tracking_uri)
    # The metrics a model can break; R² is -inf on a test split whose target is constant, whatever it does.
    if not all(math.isfinite(v) for k, v in headline.items() if k != "test/r2"):
        withdrawn = tracking.withdraw_versions(run, module.task) if run is not None else []
        raise StageFailed(
            f"test metrics are not finite ({', '.join(f'{k} {v}' for k, v in headline.items())}): the test split "
            "holds values the model turns into NaN or infinity; check the data"
            + (f"; withdrawn from the registry: {', '.join(withdrawn)}" if withdrawn else "")
        )
    if baseline is not None:
        found = baselines(split_dir, data_dir, *baseline)
        task = module.task
        headline |= {**found, f"baseline/margin/{task.monitor.replace('val/', 'test/')}": margin(
            headline, found, task.monitor, task.higher_is_better
        )}  # fmt: skip
    write_json(out_dir / "eval.json", headline)  # with the baselines' beside the net's
    if run is None:
        return headline
    run.record_numerics("evaluate")
    run.log_metrics({**headline, **logged})
    written = [out_dir / "eval.json", *sorted((out_dir / "evaluation").iterdir())]
    for path in [*written, *sorted((out_dir / "figures").iterdir())]:
        run.log_artifact(path, "evaluation")
    return headline


def predict_test(module: Predictor, test: Shards, accelerator: str, batch_size: int, limit_batches=None):
    """The outputs (logits, or predicted values) and targets of the test split (its first
    `limit_batches` batches in a smoke run; else all of it), in order, each batch read from the
    shards and normalised on the device as in training: the split is never in memory."""
    rows = min(len(test), limit_batches * batch_size) if limit_batches else len(test)
    device = device_for(accelerator)
    module.to(device).eval()
    with torch.inference_mode():
        batches = [
            module.predict_step((module.preprocess(torch.from_numpy(test[i : min(i + batch_size, rows)]).to(device)),))
            for i in range(0, rows, batch_size)
        ]
    return torch.cat(batches).float().cpu(), torch.from_numpy(test.y[:rows])


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
