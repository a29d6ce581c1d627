"""evaluate stage: the best checkpoint on the test split; metrics, confusion, predictions."""

from __future__ import annotations

import argparse
import csv
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
from reprovision.config import load_config
from reprovision.data.datamodule import NormalisedDataModule
from reprovision.files import atomic_file, read_json, write_json
from reprovision.models.system import load_classifier


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


def write_csv(path: Path, rows: list[dict], fieldnames: list[str]) -> None:
    with atomic_file(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def evaluate(
    model_dir: Path,
    data_dir: Path,
    out_dir: Path,
    accelerator: str,
    tta: bool = False,
    batch_size: int = 1024,
    loader: str = "device",
) -> dict:
    """Test metrics of `model_dir`'s checkpoint; `tta` averages each image's and its mirror's
    predicted probabilities."""
    module = load_classifier(model_dir / "model.ckpt")
    module.flip_tta = tta
    classes = module.hparams.classes
    datamodule = NormalisedDataModule(data_dir, batch_size, loader=loader, eval_batch_size=batch_size)
    trainer = pl.Trainer(
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    logits = torch.cat(trainer.predict(module, datamodule=datamodule)).float().cpu()
    targets = datamodule.datasets["test"].tensors[1].cpu()
    results = classification_metrics(logits, targets, classes)

    probs = logits.softmax(dim=1).numpy()
    predicted = probs.argmax(axis=1)
    headline = {k: results[k] for k in ("test/acc", "test/f1_macro", "test/loss")}
    matrix = np.array(results["confusion_matrix"])
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "eval.json", headline)
    write_json(out_dir / "confusion_matrix.json", {"classes": classes, "matrix": matrix.tolist()})
    write_csv(
        out_dir / "per_class.csv",
        results["per_class"],
        ["class", "precision", "recall", "f1", "support"],
    )
    prob_cols = [f"p_{c}" for c in classes]
    write_csv(
        out_dir / "predictions.csv",
        [
            {
                "index": i,
                "actual": classes[int(t)],
                "predicted": classes[int(p)],
                "confidence": f"{probs[i, p]:.6f}",
                **{col: f"{v:.6f}" for col, v in zip(prob_cols, probs[i], strict=True)},
            }
            for i, (t, p) in enumerate(zip(targets.tolist(), predicted, strict=True))
        ],
        ["index", "actual", "predicted", "confidence", *prob_cols],
    )
    with atomic_file(out_dir / "confusion_matrix.png") as tmp:
        tmp.write_bytes(plots.png_bytes(plots.confusion_figure(matrix, classes, normalise=True)))

    run = tracking.PipelineRun(read_json(model_dir / "run.json"))
    per_class = {f"test/{m}/{r['class']}": r[m] for r in results["per_class"] for m in ("precision", "recall")}
    run.log_metrics({**headline, **per_class})
    for name in (
        "eval.json",
        "confusion_matrix.json",
        "confusion_matrix.png",
        "per_class.csv",
        "predictions.csv",
    ):
        run.log_artifact(out_dir / name, "evaluation")
    return headline


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="resolved config")
    parser.add_argument("--model", required=True, type=Path, help="model directory (train)")
    parser.add_argument("--data", required=True, type=Path, help="normalised data directory")
    parser.add_argument("--out", required=True, type=Path, help="metrics directory to write into")


def run(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)
    headline = evaluate(
        args.model,
        args.data,
        args.out,
        cfg.trainer.accelerator,
        cfg.evaluate.tta,
        cfg.data.eval_batch_size,
        cfg.data.loader,
    )
    print("evaluate: " + ", ".join(f"{k} {v:.4f}" for k, v in headline.items()))
