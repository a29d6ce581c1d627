"""Evaluation of the best checkpoint on the test split: metrics, confusion matrix, per-class
metrics and per-image predictions, written as files and logged to the run's MLflow run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
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
from reprovision.models.classifier import load_classifier


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


ARTIFACTS = ("eval.json", "confusion_matrix.json", "confusion_matrix.png", "per_class.csv", "predictions.csv")


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
    module = load_classifier(model_dir / "model.ckpt")
    module.flip_tta = tta
    logits, targets = predict_test(module, data_dir, accelerator, batch_size, loader, limit_batches)
    classes = module.hparams.classes
    results = classification_metrics(logits, targets, classes)
    headline = {k: results[k] for k in ("test/acc", "test/f1_macro", "test/loss")}
    write_evaluation(out_dir, headline, results, logits, targets, classes)
    run = tracking.recorded_run(run_file, "evaluate", tracking_uri)
    if run is None:
        return headline
    per_class = {f"test/{m}/{r['class']}": r[m] for r in results["per_class"] for m in ("precision", "recall")}
    run.log_metrics({**headline, **per_class})
    for name in ARTIFACTS:
        run.log_artifact(out_dir / name, "evaluation")
    return headline


def predict_test(module, data_dir: Path, accelerator: str, batch_size: int, loader: str, limit_batches=None):
    """Logits and labels of the test split (its first `limit_batches` batches in a smoke run; else
    all of it), through Lightning's predict loop."""
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
    logits = torch.cat(trainer.predict(module, datamodule=datamodule)).float().cpu()
    return logits, datamodule.datasets["test"].tensors[1][: len(logits)].cpu()  # in order: a sequential sampler


def write_evaluation(out_dir: Path, headline: dict, results: dict, logits, targets, classes: list[str]) -> None:
    """eval.json, the confusion matrix (JSON and PNG), per_class.csv and predictions.csv."""
    probs = logits.softmax(dim=1).numpy()
    predicted = probs.argmax(axis=1)
    matrix = np.array(results["confusion_matrix"])
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "eval.json", headline)
    write_json(out_dir / "confusion_matrix.json", {"classes": classes, "matrix": matrix.tolist()})
    write_csv(out_dir / "per_class.csv", results["per_class"], ["class", "precision", "recall", "f1", "support"])
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
    write_csv(out_dir / "predictions.csv", rows, ["index", "actual", "predicted", "confidence", *prob_cols])
    with atomic_file(out_dir / "confusion_matrix.png") as tmp:
        tmp.write_bytes(plots.png_bytes(plots.confusion_figure(matrix, classes, normalise=True)))
