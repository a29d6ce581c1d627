"""Test metrics from a model's outputs and the targets, computed with torch as torchmetrics defines
them (tests/test_evaluation.py compares the two): importing torchmetrics costs a stage seconds of
start-up (it imports torchvision's models and scipy.signal); computing them takes microseconds."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
