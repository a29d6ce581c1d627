"""train + evaluate on tiny data: checkpoints load safely and carry their preprocessing."""

from __future__ import annotations

import numpy as np
import torch
from mlflow.tracking import MlflowClient

from reprovision.config import compose, validate
from reprovision.files import load_arrays, read_json
from reprovision.models.system import load_classifier
from reprovision.stages.evaluate import evaluate
from reprovision.stages.normalise import normalise
from reprovision.stages.train import train


def _plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


def test_train_then_evaluate(tiny_split, tmp_path, root, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = validate(
        compose(
            root / "conf",
            [
                "model=mlp",
                "model.hidden=[16]",
                "trainer.max_epochs=3",
                "trainer.progress_bar=false",
                "data.batch_size=16",
                f"tracking.uri={uri}",
            ],
        )
    )
    normalise(tiny_split, tmp_path / "norm")
    params = tmp_path / "params.yaml"
    params.write_text("seed: 42\n")  # stands in for the resolved config file
    summary = train(
        cfg,
        params,
        tmp_path / "norm",
        tiny_split / "summary.json",
        tmp_path / "ckpt",
        tmp_path / "models",
        tmp_path / "train.json",
        tmp_path / "curves.csv",
    )
    assert summary["epochs"] == 3
    assert (tmp_path / "curves.csv").read_text().count("\n") == 4  # header + one row per epoch

    # The checkpoint loads with weights_only=True and holds only plain hyperparameters.
    ckpt = torch.load(tmp_path / "models" / "model.ckpt", weights_only=True)
    assert _plain(ckpt["hyper_parameters"])
    # The training split's statistics travel with the model: raw uint8 in, same input out.
    module = load_classifier(tmp_path / "models" / "model.ckpt")
    raw = torch.from_numpy(load_arrays(tiny_split / "test.npz")["x"])
    expected = torch.from_numpy(load_arrays(tmp_path / "norm" / "test.npz")["x"])
    assert torch.allclose(module.preprocess(raw), expected, atol=1e-6)

    headline = evaluate(tmp_path / "models", tmp_path / "norm", tmp_path / "metrics", "cpu")
    assert 0 <= headline["test/acc"] <= 1
    predictions = (tmp_path / "metrics" / "predictions.csv").read_text().splitlines()
    assert len(predictions) == 1 + 15
    matrix = np.array(read_json(tmp_path / "metrics" / "confusion_matrix.json")["matrix"])
    assert matrix.sum() == 15

    run_id = read_json(tmp_path / "models" / "run.json")["run_id"]
    run = MlflowClient(uri).get_run(run_id)
    assert run.data.params["model.name"] == "mlp"
    assert run.data.params["dataset.classes"] == "a,b,c"
    assert run.data.params["dataset.size.train"] == "60"
    assert int(run.data.params["model.parameter_count"]) == sum(p.numel() for p in module.net.parameters())
    assert run.data.tags["recipe"].startswith("mlp adam lr=0.001 constant")
    assert run.data.metrics["test/acc"] == headline["test/acc"]
