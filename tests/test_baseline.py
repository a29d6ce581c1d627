"""The baselines beside the net: fitted on the training split only (never the test split), on the
inputs as the net reads them, within their row bound, scored as the net is, and skippable."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from reprovision.baseline import baselines
from reprovision.data.raw import RESERVED_WORDS
from reprovision.data.shards import save_split
from reprovision.evaluation import evaluate
from reprovision.files import write_json
from reprovision.models.module import Model


def table_data(where, x_train, y_train, x_test, y_test, task="classification", classes=("no", "yes")):
    """A split of table rows and its statistics (mean 0, std 1: each row as it is)."""
    inputs = {"kind": "table", "features": ["a", "b"], "mean": [0.0, 0.0], "std": [1.0, 1.0]}
    classes = list(classes) if task == "classification" else []
    write_json(where / "stats.json", {"task": task, "classes": classes, "target": "t", "inputs": inputs})
    for split, x, y in (("train", x_train, y_train), ("val", x_train[:4], y_train[:4]), ("test", x_test, y_test)):
        save_split(where, split, np.asarray(x, np.float32), np.asarray(y))
    return inputs


def separable(n: int, seed: int = 0, flip: bool = False):
    """Column a decides the class (b is noise); `flip` swaps the classes: a test split whose rule is
    the opposite of the training split's."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = (x[:, 0] > 0).astype(np.int64)
    return x, 1 - y if flip else y


def test_the_baseline_learns_from_the_training_split_never_the_test_split(tmp_path):
    """Train and test disagree on the rule: fitted on train it gets the test split all wrong; fitted
    on test (the bug) it would get it all right."""
    table_data(tmp_path, *separable(200), *separable(100, seed=1, flip=True))
    found = baselines(tmp_path, tmp_path, seed=0, max_rows=10_000)
    assert found["baseline/logistic/test/acc"] < 0.05
    assert found["baseline/majority/test/acc"] == pytest.approx(np.mean(separable(100, 1, True)[1] == 1), abs=0.2)


def test_the_baseline_reads_documents_as_multi_hot_words(tmp_path):
    """The word `great` (id 5) decides the class wherever it stands in the document."""
    rng = np.random.default_rng(0)
    docs = rng.integers(6, 40, size=(300, 12))
    y = rng.integers(0, 2, size=300)
    docs[np.arange(300), rng.integers(1, 12, size=300)] = np.where(y == 1, 5, 4)
    docs[:, 0], docs[:40, 8:] = 1, 0  # START, and padding at the end of some documents
    inputs = {"kind": "text", "vocabulary": [*RESERVED_WORDS, "awful", "great", *map(str, range(6, 40))]}
    write_json(tmp_path / "stats.json", {"task": "classification", "classes": ["neg", "pos"], "inputs": inputs})
    for split, rows in (("train", slice(0, 200)), ("val", slice(200, 220)), ("test", slice(200, 300))):
        save_split(tmp_path, split, docs[rows].astype(np.int32), y[rows])
    assert baselines(tmp_path, tmp_path, seed=0, max_rows=10_000)["baseline/logistic/test/acc"] == 1.0


def test_the_baseline_fits_at_most_its_row_bound(tmp_path, monkeypatch):
    from sklearn.linear_model import LogisticRegression

    table_data(tmp_path, *separable(500), *separable(50, seed=1))
    fitted, fit = [], LogisticRegression.fit
    monkeypatch.setattr(LogisticRegression, "fit", lambda self, x, y: fitted.append(len(y)) or fit(self, x, y))
    baselines(tmp_path, tmp_path, seed=0, max_rows=64)
    assert fitted == [64]
    # A draw of one row holds one class: the majority class alone, no regression to fit.
    fitted.clear()
    assert [k for k in baselines(tmp_path, tmp_path, seed=0, max_rows=1) if k.endswith("test/acc")] == [
        "baseline/majority/test/acc"
    ]
    assert fitted == []


def test_wide_rows_are_fitted_and_scored_within_the_bound_on_values(tmp_path, monkeypatch):
    """Photos are wide rows: the draw shrinks to MAX_CELLS values, and the test split becomes
    features a chunk at a time, all of it scored (10,000 rows of 128x128 RGB would be 3.9 GB)."""
    from sklearn.linear_model import LogisticRegression

    from reprovision import baseline

    table_data(tmp_path, *separable(500), *separable(50, seed=1))  # rows of two values
    monkeypatch.setattr(baseline, "MAX_CELLS", 2 * 80)  # 80 training rows; test chunks of 80 / 8
    fitted, fit = [], LogisticRegression.fit
    monkeypatch.setattr(LogisticRegression, "fit", lambda self, x, y: fitted.append(len(y)) or fit(self, x, y))
    read, features = [], baseline.features
    monkeypatch.setattr(baseline, "features", lambda x, inputs: read.append(len(x)) or features(x, inputs))
    found = baselines(tmp_path, tmp_path, seed=0, max_rows=10_000)
    assert fitted == [80]
    assert read == [80, 10, 10, 10, 10, 10]  # the draw, then the 50 test rows in chunks
    monkeypatch.undo()  # the same draw of 80 rows, the test split in one piece: the same answers
    assert found == baselines(tmp_path, tmp_path, seed=0, max_rows=80)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_evaluate_writes_and_logs_the_baselines_and_the_margin_unless_switched_off(tmp_path, task):
    x, y = separable(200)
    target = y if task == "classification" else (3 * x[:, 0] + 1).astype(np.float32)
    x_test, y_test = separable(60, seed=1)
    test_target = y_test if task == "classification" else (3 * x_test[:, 0] + 1).astype(np.float32)
    (tmp_path / "data").mkdir()
    inputs = table_data(tmp_path / "data", x, target, x_test, test_target, task)
    classes = ["no", "yes"] if task == "classification" else []
    net = {"name": "mlp", "hidden": [4], "dropout": 0.0, "init": "default"}
    model = Model(net=net, optim={}, task=task, classes=classes, inputs=inputs)
    (tmp_path / "models").mkdir()
    torch.save(
        {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, tmp_path / "models" / "model.ckpt"
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("b")).info.run_id
    write_json(tmp_path / "run.json", {"run_id": run_id, "tracking_uri": uri})
    data = tmp_path / "data"  # the split and its statistics in one directory
    args = (tmp_path / "models", tmp_path / "run.json", data, data, tmp_path / "metrics", "cpu")
    headline = evaluate(*args, tracking_uri=uri, baseline=(0, 10_000))
    metric, better = ("test/acc", max) if task == "classification" else ("test/mae", min)
    names = ("logistic", "majority") if task == "classification" else ("linear", "mean")
    best = better(headline[f"baseline/{n}/{metric}"] for n in names)
    margin = headline[metric] - best if task == "classification" else best - headline[metric]
    assert headline[f"baseline/margin/{metric}"] == pytest.approx(margin)
    assert json.loads((tmp_path / "metrics" / "eval.json").read_text()) == headline
    assert client.get_run(run_id).data.metrics[f"baseline/{names[0]}/{metric}"] == pytest.approx(
        headline[f"baseline/{names[0]}/{metric}"]
    )
    assert not [k for k in evaluate(*args, tracking_uri=uri) if k.startswith("baseline/")]  # evaluate.baseline=false
