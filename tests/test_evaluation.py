"""evaluate: the metrics agree with an independent implementation (scikit-learn)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

from reprovision.evaluation import classification_metrics


def test_metrics_match_scikit_learn():
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 4, (200,), generator=g)
    logits = torch.randn(200, 4, generator=g)
    logits[torch.arange(200), targets] += 1.0  # better than chance, not perfect
    pred = logits.argmax(1).numpy()
    y = targets.numpy()
    m = classification_metrics(logits, targets, ["a", "b", "c", "d"])
    assert np.isclose(m["test/acc"], accuracy_score(y, pred))
    assert np.isclose(m["test/f1_macro"], f1_score(y, pred, average="macro"))
    assert np.isclose(m["test/loss"], torch.nn.functional.cross_entropy(logits, targets).item())
    assert np.allclose([r["precision"] for r in m["per_class"]], precision_score(y, pred, average=None))
    assert np.allclose([r["recall"] for r in m["per_class"]], recall_score(y, pred, average=None))
    assert m["confusion_matrix"] == confusion_matrix(y, pred).tolist()  # rows actual, columns predicted
