"""The registry's `champion` alias on a real MLflow SQLite store: it follows the best val/acc, or
for a regression the lowest val/mae."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from reprovision.tasks import CLASSIFICATION, REGRESSION
from reprovision.tracking import CHAMPION, promote_champion


def test_champion_moves_only_to_a_strictly_better_version_whatever_the_order(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_registered_model("digits-classification")
    expected = []
    for score, champion in ((0.5, "1"), (0.7, "2"), (0.6, "2"), (0.7, "2"), (0.8, "5")):
        client.create_model_version("digits-classification", str(tmp_path), tags={"val_acc": str(score)})
        promote_champion(client, "digits-classification", CLASSIFICATION)
        expected.append(champion)
        assert str(client.get_model_version_by_alias("digits-classification", CHAMPION).version) == champion, expected


def test_two_registrations_racing_end_on_the_best(tmp_path):
    """Both register before either moves the alias; the worse one sets it last: still the best."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_registered_model("m")
    client.create_model_version("m", str(tmp_path), tags={"val_acc": "0.9"})
    client.create_model_version("m", str(tmp_path), tags={"val_acc": "0.8"})
    promote_champion(client, "m", CLASSIFICATION)  # the 0.9 pipeline
    promote_champion(client, "m", CLASSIFICATION)  # the 0.8 pipeline, later
    assert str(client.get_model_version_by_alias("m", CHAMPION).version) == "1"


def test_a_regression_champion_is_the_lowest_val_mae(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_registered_model("r")
    expected = []
    for mae, champion in ((50.0, "1"), (45.0, "2"), (47.0, "2"), (45.0, "2"), (44.5, "5")):
        client.create_model_version("r", str(tmp_path), tags={"val_mae": str(mae), "task": "regression"})
        promote_champion(client, "r", REGRESSION)
        expected.append(champion)
        assert str(client.get_model_version_by_alias("r", CHAMPION).version) == champion, expected


def test_a_name_shared_by_two_tasks_crowns_each_task_from_its_own_versions(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_registered_model("two-tasks")
    client.create_model_version("two-tasks", str(tmp_path), tags={"val_acc": "0.9", "task": "classification"})
    client.create_model_version("two-tasks", str(tmp_path), tags={"val_mae": "3.0", "task": "regression"})
    client.create_model_version(
        "two-tasks", str(tmp_path), tags={"val_mae": "0.5", "task": "classification"}
    )  # not a regression's
    assert str(promote_champion(client, "two-tasks", REGRESSION).version) == "2"
    assert str(promote_champion(client, "two-tasks", CLASSIFICATION).version) == "1"


def test_a_model_whose_test_metrics_are_not_finite_fails_evaluate_and_leaves_the_registry(tmp_path):
    """Values the model turns into NaN in the test split: evaluate fails (exit 1), the run's
    registered version is withdrawn and `champion` goes back to the best of the others."""
    import numpy as np
    import pytest
    import torch

    from reprovision.data.shards import save_split
    from reprovision.errors import StageFailed
    from reprovision.evaluation import evaluate
    from reprovision.files import write_json
    from reprovision.models.module import Model

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("nan")).info.run_id
    client.create_registered_model("t")
    client.create_model_version("t", str(tmp_path), tags={"val_acc": "0.6"})  # an earlier run's
    client.create_model_version("t", str(tmp_path), run_id=run_id, tags={"val_acc": "0.9"})  # this run's
    promote_champion(client, "t", CLASSIFICATION)
    inputs = {"kind": "table", "features": ["a", "b"], "mean": [0.0, 0.0], "std": [1.0, 1.0]}
    net = {"name": "mlp", "hidden": [4], "dropout": 0.0, "init": "default"}
    model = Model(net=net, optim={}, task="classification", classes=["no", "yes"], inputs=inputs)
    (tmp_path / "models").mkdir()
    torch.save(
        {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, tmp_path / "models" / "model.ckpt"
    )
    x = np.array([[1.0, 2.0], [np.inf, 0.0]], dtype=np.float32)
    save_split(tmp_path / "data", "test", x, np.array([0, 1], dtype=np.int64))
    write_json(tmp_path / "run.json", {"run_id": run_id, "tracking_uri": uri})
    with pytest.raises(StageFailed, match=r"test metrics are not finite.*withdrawn from the registry: t version 2"):
        evaluate(tmp_path / "models", tmp_path / "run.json", tmp_path / "data", tmp_path / "data", tmp_path / "metrics",
                 "cpu", tracking_uri=uri)  # fmt: skip
    assert [str(v.version) for v in client.search_model_versions("name='t'")] == ["1"]
    assert str(client.get_model_version_by_alias("t", CHAMPION).version) == "1"
    assert "test/acc" not in client.get_run(run_id).data.metrics


def test_a_test_split_with_a_constant_target_is_scored_not_failed(tmp_path):
    """R² is -inf where the test targets do not vary: the model broke nothing, evaluate goes on."""
    import numpy as np
    import torch

    from reprovision.data.shards import save_split
    from reprovision.evaluation import evaluate
    from reprovision.models.module import Model

    inputs = {"kind": "table", "features": ["a"], "mean": [0.0], "std": [1.0]}
    net = {"name": "mlp", "hidden": [4], "dropout": 0.0, "init": "default"}
    model = Model(net=net, optim={}, task="regression", classes=[], inputs=inputs)
    (tmp_path / "models").mkdir()
    torch.save(
        {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, tmp_path / "models" / "model.ckpt"
    )
    save_split(tmp_path / "data", "test", np.ones((3, 1), np.float32), np.full(3, 2.0, np.float32))
    data = tmp_path / "data"
    headline = evaluate(tmp_path / "models", tmp_path / "none.json", data, data, tmp_path / "metrics", "cpu")
    assert headline["test/r2"] == float("-inf") and np.isfinite(headline["test/mae"])
