"""What each stage reads, checked through the command a user runs: evaluate scores the test split;
a resume takes only a checkpoint of its own config (the optimizer's settings included); k-fold
keeps the epoch its smoothed fold-mean ranks best; the refit trains on train + val."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from tests.training.test_resume import ROOT, digits, in_process, train_cmd  # noqa: F401 (digits: a fixture)

from reprovision.cli import main
from reprovision.config import compose, validate
from reprovision.data.normalise import normalise
from reprovision.data.shards import load_split
from reprovision.files import read_csv, read_json
from reprovision.models.module import Model
from reprovision.tasks import CLASSIFICATION


def test_evaluate_scores_every_test_example_in_order_and_nothing_else(digits, tmp_path, capsys):  # noqa: F811
    """The validation split (288 examples) is not the test split (360): the predictions are the test's."""
    stats = read_json(digits / "normalised" / "stats.json")
    cfg = validate(compose(ROOT / "conf", ["evaluate.baseline=false"]))
    model = Model(dataclasses.asdict(cfg.model), dataclasses.asdict(cfg.optim), "classification", stats["classes"],
                  stats["inputs"])  # fmt: skip
    (tmp_path / "models").mkdir()
    torch.save(
        {"hyper_parameters": dict(model.hparams), "state_dict": model.state_dict()}, tmp_path / "models" / "model.ckpt"
    )
    (tmp_path / "params.yaml").write_text(OmegaConf.to_yaml(compose(ROOT / "conf", ["evaluate.baseline=false"])))
    capsys.readouterr()
    code = main(["evaluate", "--params", str(tmp_path / "params.yaml"), "--model", str(tmp_path / "models"), "--run",
                 str(tmp_path / "no-run.json"), "--split", str(digits / "split"), "--data", str(digits / "normalised"),
                 "--out", str(tmp_path / "m")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    test = load_split(digits / "split", "test")["y"]
    assert len(test) != len(load_split(digits / "split", "val")["y"])
    rows = read_csv(tmp_path / "m" / "evaluation" / "predictions.csv")
    assert [r["actual"] for r in rows] == [stats["classes"][i] for i in test]
    accuracy = np.mean([r["actual"] == r["predicted"] for r in rows])
    assert json.loads((tmp_path / "m" / "eval.json").read_text())["test/acc"] == accuracy.astype(np.float32).item()


def test_a_killed_run_is_resumed_only_with_its_own_optimizer_settings(digits, capsys, monkeypatch):  # noqa: F811
    from reprovision import tracking

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    for name, change in (("same", []), ("other-lr", ["optim.lr=0.002"]), ("other-betas", ["optim.betas=[0.8,0.99]"])):
        where = digits / f"resume-{name}"
        with monkeypatch.context() as patched:  # killed after its last epoch, as its model goes to MLflow
            patched.setattr(tracking, "log_model", interrupt)
            assert in_process(train_cmd(digits, where, "trainer.max_epochs=2"), capsys)[0] == 130
        code, out, err = in_process(train_cmd(digits, where, "trainer.max_epochs=2", *change), capsys)
        assert code == 0, err
        assert ("resuming from" in out) == (name == "same"), name


def kfold(tiny_split, tmp_path, capsys, *overrides: str) -> dict:
    """`reprovision train` with 2 folds on the tiny split; its train.json, curves and MLflow store."""
    normalise(tiny_split, tmp_path / "normalised")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = ["model=mlp", "model.hidden=[8]", "optim.lr=0.01", "trainer.max_epochs=6", "split.folds=2",
           "trainer.progress_bar=false", f"tracking.uri={uri}", "tracking.registered_model=null", *overrides]  # fmt: skip
    (tmp_path / "params.yaml").write_text(OmegaConf.to_yaml(compose(ROOT / "conf", cfg)))
    capsys.readouterr()
    code = main(["train", "--params", str(tmp_path / "params.yaml"), "--data", str(tmp_path / "normalised"),
                 "--summary", str(tiny_split / "summary.json"), "--checkpoints", str(tmp_path / "checkpoints"),
                 "--out", str(tmp_path / "models"), "--metrics", str(tmp_path / "train.json"), "--curves",
                 str(tmp_path / "curves.csv")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    return {"train": read_json(tmp_path / "train.json"), "curves": read_csv(tmp_path / "curves.csv"), "uri": uri}


def test_kfold_keeps_the_epoch_its_smoothed_fold_mean_ranks_best(tiny_split, tmp_path, capsys):
    run = kfold(tiny_split, tmp_path, capsys)
    rows = [{"epoch": int(r["epoch"]), "val/acc": float(r["cv/val/acc_smoothed"]),
             "val/loss": float(r["cv/val/loss_smoothed"])} for r in run["curves"]]  # fmt: skip
    assert run["train"]["cv/best_epoch"] == CLASSIFICATION.best(rows)["epoch"]
    assert len({r["val/acc"] for r in rows}) > 1  # the curve moves: a worst epoch would differ


def test_the_refit_trains_on_the_training_and_validation_splits_together(tiny_split, tmp_path, capsys):
    run = kfold(tiny_split, tmp_path, capsys, "split.refit=true")
    sizes = read_json(tiny_split / "summary.json")["sizes"]
    epochs, examples = run["train"]["refit/epochs"], run["train"]["refit/examples"]
    assert examples == sizes["train"] + sizes["val"]
    client = MlflowClient(run["uri"])
    refit = next(r for r in client.search_runs(["1"]) if r.data.tags["mlflow.runName"].startswith("refit"))
    assert refit.data.metrics["time/train_images"] == epochs * examples  # what it trained on, counted as it ran
