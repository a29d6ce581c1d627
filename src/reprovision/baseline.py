"""The simplest models to beat, fitted by scikit-learn on the training split the net trained on,
read as the net reads it (pixels and columns normalised with the same statistics, the multi-hot
words of a document), and scored on the test split as the net is: logistic regression and the majority class for a
classification, linear regression and the training mean for a regression.

Bounded: at most `max_rows` training rows (a seeded draw), fewer where the rows are wide (at most
MAX_CELLS values in all: 10,000 photos of 128x128 pixels would be 3.9 GB of float64), MAX_ITER
solver iterations, and the test split read as features a chunk at a time; the measured cost is
in the README (Tracking a run's baseline)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from reprovision.data.normalise import net_shards
from reprovision.files import read_json
from reprovision.scoring import classification_metrics, regression_metrics

MAX_ITER = 100  # lbfgs steps of the logistic regression: converged on digits, close on MNIST and CIFAR-10
MAX_CELLS = 2**25  # training values fitted (268 MB of float64): all 10,000 rows of CIFAR-10's 3,072 pixels


def features(x: np.ndarray, inputs: dict):
    """Rows as the net reads them: flattened normalised pixels, normalised table columns, or each
    document's words as a multi-hot row over the vocabulary (a sparse matrix: padding is no word)."""
    if inputs["kind"] != "text":  # in float32, as the net's preprocessing computes them
        mean, std = (np.asarray(inputs[k], dtype=np.float32) for k in ("mean", "std"))
        x = x.astype(np.float32)
        if inputs["kind"] == "image":
            x, mean, std = x / 255.0, mean[None, :, None, None], std[None, :, None, None]
        return ((x - mean) / std).reshape(len(x), -1).astype(np.float64)
    from scipy.sparse import csr_matrix

    rows, cols = np.nonzero(x)  # padding (0) is no word
    multi = csr_matrix((np.ones(len(rows)), (rows, x[rows, cols])), shape=(len(x), len(inputs["vocabulary"])))
    multi.sum_duplicates()
    multi.data[:] = 1.0  # a word counts once, as in the multi-hot net
    return multi


def baselines(split_dir: Path, data_dir: Path, seed: int, max_rows: int) -> dict[str, float]:
    """The baselines' test metrics as `baseline/<model>/<metric>` (test/acc, test/mae, ...)."""
    stats = read_json(data_dir / "stats.json")
    inputs = stats["inputs"]
    # Shards: only the drawn training rows and a chunk of test rows at a time are read.
    train, test = (net_shards(split_dir, data_dir, s, inputs["kind"]) for s in ("train", "test"))
    width = int(np.prod(train.x_shape)) if inputs["kind"] != "text" else 1  # text: sparse rows
    rows = np.random.default_rng(seed).permutation(len(train))[: min(max_rows, max(1, MAX_CELLS // width))]
    rows.sort()
    x, y = features(train[rows], inputs), train.y[rows]
    chunk, y_test = max(1, MAX_CELLS // 8 // width), torch.from_numpy(test.y)

    def predict(fitted) -> np.ndarray:  # the test split's features a chunk at a time
        parts = range(0, len(y_test), chunk)
        return np.concatenate([fitted(features(test[i : i + chunk], inputs)) for i in parts])

    if stats["task"] == "classification":
        return _classification(x, y, predict, y_test, stats["classes"], seed)
    return _regression(x, y, predict, y_test)


def _classification(x, y, predict, y_test, classes: list[str], seed: int) -> dict[str, float]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    k = len(classes)
    majority = np.bincount(y, minlength=k) / len(y)
    fitted = [("majority", np.broadcast_to(majority, (len(y_test), k)))]
    if len(np.unique(y)) > 1:  # a draw of a few rows may hold one class: no regression to fit then
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # bounded on purpose: MAX_ITER
            model = LogisticRegression(max_iter=MAX_ITER, random_state=seed).fit(x, y)
        probs = np.zeros((len(y_test), k))
        probs[:, model.classes_] = predict(model.predict_proba)  # classes absent from the drawn rows: 0
        fitted.insert(0, ("logistic", probs))
    found = {}
    for name, p in fitted:
        logits = torch.from_numpy(np.log(np.clip(p, 1e-12, None))).float()  # softmax(log p) = p
        metrics = classification_metrics(logits, y_test, classes)
        found |= {f"baseline/{name}/{m}": metrics[m] for m in ("test/acc", "test/f1_macro", "test/loss")}
    return found


def _regression(x, y, predict, y_test) -> dict[str, float]:
    from sklearn.linear_model import LinearRegression

    predicted = predict(LinearRegression().fit(x, y).predict)
    found = {}
    for name, p in (("linear", predicted), ("mean", np.full(len(y_test), float(np.mean(y))))):
        metrics = regression_metrics(torch.from_numpy(np.asarray(p, dtype=np.float32)), y_test.float())
        found |= {f"baseline/{name}/{m}": v for m, v in metrics.items()}
    return found


def margin(headline: dict[str, float], found: dict[str, float], monitor: str, higher_is_better: bool) -> float:
    """How far the net is ahead of the best baseline on the task's headline test metric (positive:
    the net is better): test/acc over the baselines', or their test/mae over the net's."""
    metric = monitor.replace("val/", "test/")
    scores = [v for k, v in found.items() if k.endswith("/" + metric)]
    best = max(scores) if higher_is_better else min(scores)
    return headline[metric] - best if higher_is_better else best - headline[metric]
