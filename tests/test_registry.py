"""The registry's `champion` alias on a real MLflow SQLite store: it follows the best val/acc."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from reprovision.tracking import CHAMPION, promote_champion


def test_champion_moves_only_to_a_strictly_better_version_whatever_the_order(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_registered_model("digits-classifier")
    expected = []
    for score, champion in ((0.5, "1"), (0.7, "2"), (0.6, "2"), (0.7, "2"), (0.8, "5")):
        client.create_model_version("digits-classifier", str(tmp_path), tags={"val_acc": str(score)})
        promote_champion(client, "digits-classifier")
        expected.append(champion)
        assert str(client.get_model_version_by_alias("digits-classifier", CHAMPION).version) == champion, expected


def test_two_registrations_racing_end_on_the_best(tmp_path):
    """Both register before either moves the alias; the worse one sets it last: still the best."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_registered_model("m")
    client.create_model_version("m", str(tmp_path), tags={"val_acc": "0.9"})
    client.create_model_version("m", str(tmp_path), tags={"val_acc": "0.8"})
    promote_champion(client, "m")  # the 0.9 pipeline
    promote_champion(client, "m")  # the 0.8 pipeline, later
    assert str(client.get_model_version_by_alias("m", CHAMPION).version) == "1"
