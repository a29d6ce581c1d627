"""One rule chooses among epochs, folds' epochs, sweep trials and registered versions: the
monitored metric, and among equals the lower validation loss (Task.rank). On a small validation
split accuracy ties constantly; the earliest of the tied epochs is often the worst model."""

from __future__ import annotations

import json
from types import SimpleNamespace

import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from tests.conftest import ROOT

from reprovision.cli import main
from reprovision.config import compose
from reprovision.data.normalise import normalise
from reprovision.files import read_csv
from reprovision.tasks import CLASSIFICATION, REGRESSION
from reprovision.tracking import CHAMPION, promote_champion
from reprovision.training.callbacks import RankedEarlyStopping
from reprovision.training.crossval import chosen_epoch
from reprovision.training.sweep import ranked

TIED = [  # val/acc ties at 1.0 from the second epoch on; the loss goes on falling, then rises
    {"epoch": 1, "val/acc": 0.8, "val/loss": 0.9},
    {"epoch": 2, "val/acc": 1.0, "val/loss": 0.5},
    {"epoch": 3, "val/acc": 1.0, "val/loss": 0.2},
    {"epoch": 4, "val/acc": 1.0, "val/loss": 0.2},
    {"epoch": 5, "val/acc": 1.0, "val/loss": 0.3},
]


def test_the_rule_takes_the_lower_loss_among_equal_scores_and_the_first_of_full_equals():
    assert CLASSIFICATION.best(TIED)["epoch"] == 3
    rows = [{"val/mae": 2.0, "val/loss": 5.0}, {"val/mae": 2.0, "val/loss": 4.0}, {"val/mae": 1.9, "val/loss": 9.0}]
    assert REGRESSION.best(rows) is rows[2]  # the monitored metric first
    assert REGRESSION.best(rows[:2]) is rows[1]


def test_kfold_chooses_the_epoch_by_the_same_rule():
    monitored = {r["epoch"]: {"cv/val/acc_smoothed": r["val/acc"]} for r in TIED}
    losses = {r["epoch"]: {"cv/val/loss_smoothed": r["val/loss"]} for r in TIED}
    assert chosen_epoch(monitored, losses, CLASSIFICATION) == 3


def test_the_sweep_ranks_trials_by_the_same_rule():
    trials = [{"trial": r["epoch"], **r} for r in TIED]
    assert [t["trial"] for t in ranked(trials, CLASSIFICATION)] == [3, 4, 5, 2, 1]


def test_early_stopping_counts_from_the_best_epoch_by_the_same_rule():
    """Patience 2: epochs 4 and 5 do not beat epoch 3, so training stops after epoch 5; counting
    from the first 100% (epoch 2), as one metric alone would, it would stop after epoch 4."""
    seen: list[dict] = []
    stopper = RankedEarlyStopping(CLASSIFICATION, 2, lambda: seen)
    trainer = SimpleNamespace(should_stop=False, strategy=SimpleNamespace(reduce_boolean_decision=lambda x, all: x))
    for row in TIED:
        seen.append(row)
        stopper.on_train_epoch_end(trainer, None)
        if trainer.should_stop:
            break
    assert (seen[-1]["epoch"], stopper.stopped_epoch) == (5, 5)


def test_the_champion_is_crowned_by_the_same_rule(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_registered_model("m")
    for row in TIED:
        client.create_model_version(
            "m", str(tmp_path), tags={"val_acc": str(row["val/acc"]), "val_loss": str(row["val/loss"])}
        )
    promote_champion(client, "m", CLASSIFICATION)
    assert str(client.get_model_version_by_alias("m", CHAMPION).version) == "3"


def test_the_train_stage_keeps_the_best_epoch_by_the_rule_where_accuracy_ties(tiny_split, tmp_path, capsys):
    """15 validation images that the net gets all right within a few epochs: the kept epoch is the
    best by the rule, not the first at 100%; the summary says the validation split is too small."""
    normalise(tiny_split, tmp_path / "normalised")
    params = tmp_path / "params.yaml"
    overrides = ["model=mlp", "model.hidden=[16]", "optim.lr=0.01", "trainer.max_epochs=25", "trainer.early_stopping=4",
                 "trainer.progress_bar=false", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
                 "tracking.registered_model=null"]  # fmt: skip
    params.write_text(OmegaConf.to_yaml(compose(ROOT / "conf", overrides)))
    capsys.readouterr()
    code = main(["train", "--params", str(params), "--data", str(tmp_path / "normalised"), "--summary",
                 str(tiny_split / "summary.json"), "--checkpoints", str(tmp_path / "checkpoints"), "--out",
                 str(tmp_path / "models"), "--metrics", str(tmp_path / "train.json"), "--curves",
                 str(tmp_path / "curves.csv")])  # fmt: skip
    said = capsys.readouterr().out
    assert code == 0
    rows = [{k: float(v) for k, v in r.items() if v} for r in read_csv(tmp_path / "curves.csv")]
    first_at_best = next(r for r in rows if r["val/acc"] == max(r["val/acc"] for r in rows))
    kept = CLASSIFICATION.best(rows)
    assert kept["epoch"] > first_at_best["epoch"]  # the tie was broken: one metric alone keeps the first
    assert json.loads((tmp_path / "train.json").read_text())["best_epoch"] == kept["epoch"]
    assert torch.load(tmp_path / "models" / "model.ckpt", weights_only=True)["epoch"] + 1 == kept["epoch"]
    assert "train: warning: 15 validation examples, 5 of class 'a' (the fewest; 20 would do)" in said
