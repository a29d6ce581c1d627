"""k-fold cross-validation: stratified folds, one child run each, mean ± std of val/acc."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from tests.data.formats import data_config
from tests.project import ROOT

from reprovision.config import compose, validate
from reprovision.data.normalise import normalise
from reprovision.data.shards import load_split
from reprovision.data.sources import download
from reprovision.data.splitting import split
from reprovision.files import read_json
from reprovision.training import crossval
from reprovision.training.crossval import fold_indices, train_and_cross_validate
from reprovision.training.paths import TrainPaths


def test_folds_are_stratified_and_validate_every_sample_once():
    labels = np.repeat([0, 1, 2], [30, 60, 90])
    folds = fold_indices(labels, 3, seed=0)
    val = np.concatenate([va for _, va in folds])
    assert sorted(val.tolist()) == list(range(180))
    for tr, va in folds:
        assert not set(tr) & set(va)
        assert np.bincount(labels[va]).tolist() == [10, 20, 30]


@pytest.mark.slow
def test_three_fold_run_on_digits(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    download(data_config(), tmp_path / "raw")
    split(data_config(), tmp_path / "raw", tmp_path / "split", seed=42)
    normalise(tmp_path / "split", tmp_path / "normalised")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    composed = compose(
        ROOT / "conf", ["split.folds=3", "trainer.max_epochs=2", "trainer.progress_bar=false", f"tracking.uri={uri}"]
    )
    (tmp_path / "params.yaml").write_text(OmegaConf.to_yaml(composed))
    paths = TrainPaths.scratch(
        tmp_path, tmp_path / "params.yaml", tmp_path / "normalised", tmp_path / "split" / "summary.json"
    )
    summary = train_and_cross_validate(validate(composed), paths)
    assert summary["cv/folds"] == 3

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("reprovision").experiment_id])
    main = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    folds = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == main.info.run_id]
    assert sorted(r.info.run_name for r in folds) == ["fold 1/3", "fold 2/3", "fold 3/3"]
    # The summary's mean and spread are those of the folds' own runs (the sample std, of 3 folds).
    accs = [r.data.metrics["best/val/acc"] for r in folds]
    assert summary["cv/val/acc_mean"] == pytest.approx(np.mean(accs))
    assert summary["cv/val/acc_std"] == pytest.approx(np.std(accs, ddof=1))
    assert main.data.metrics["best/cv/val/acc_mean"] == pytest.approx(np.mean(accs))
    assert main.data.metrics["best/cv/val/acc_std"] == pytest.approx(np.std(accs, ddof=1))
    # Each fold trained on its own part of the pooled train + val images (1149 + 288), validated
    # on the rest, and every image is validated in exactly one fold.
    sizes = [{s: int(r.data.params[f"dataset.size.{s}"]) for s in ("train", "val")} for r in folds]
    assert all(s["train"] + s["val"] == 1437 for s in sizes) and sum(s["val"] for s in sizes) == 1437
    for run, size in zip(folds, sizes, strict=True):
        assert run.data.metrics["time/train_images"] == 2 * size["train"]  # 2 epochs of its own split


@pytest.mark.slow
def test_refit_publishes_a_model_trained_on_train_and_val_for_the_chosen_epochs(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    data = data_config("data=diabetes", "model=mlp")
    download(data, tmp_path / "raw")
    split(data, tmp_path / "raw", tmp_path / "split", seed=42)
    normalise(tmp_path / "split", tmp_path / "normalised")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = [
        "data=diabetes",
        "model=mlp",
        "model.hidden=[16]",
        "split.folds=3",
        "split.refit=true",
        "trainer.max_epochs=6",
    ]
    composed = compose(ROOT / "conf", [*overrides, "trainer.progress_bar=false", f"tracking.uri={uri}"])
    (tmp_path / "params.yaml").write_text(OmegaConf.to_yaml(composed))
    paths = TrainPaths.scratch(
        tmp_path, tmp_path / "params.yaml", tmp_path / "normalised", tmp_path / "split" / "summary.json"
    )
    # The folds' smoothed curve, bent to be lowest at epoch 3 of 6: a few epochs of a small net
    # would still be improving at the last one, where the refit's epoch count could not be told
    # from max_epochs.
    real = crossval.fold_mean_curve

    def lowest_at_3(curves, monitor):
        return {e: {**row, f"cv/{monitor}_smoothed": abs(e - 3)} for e, row in real(curves, monitor).items()}

    monkeypatch.setattr(crossval, "fold_mean_curve", lowest_at_3)
    summary = train_and_cross_validate(validate(composed), paths)
    epochs = int(summary["cv/best_epoch"])
    assert epochs == 3
    pooled = sum(len(load_split(tmp_path / "split", s)["y"]) for s in ("train", "val"))
    assert summary["refit/epochs"] == epochs and summary["refit/examples"] == pooled

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("reprovision").experiment_id])
    main = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    (refit,) = [r for r in runs if r.info.run_name.startswith("refit")]
    assert refit.data.tags["mlflow.parentRunId"] == main.info.run_id
    # The refit saw every training and validation row once an epoch, for the folds' epoch count...
    assert refit.data.metrics["time/train_images"] == epochs * pooled
    # No validation: the rows it could check are rows it trains on (nor early stopping on them).
    assert not [k for k in refit.data.metrics if k.startswith(("val/", "best/val"))], sorted(refit.data.metrics)
    # ...and its final epoch is the model the stage publishes (evaluate and serve read it), not
    # the main fit's best epoch on the validation split.
    published = torch.load(paths.out / "model.ckpt", weights_only=True)
    main_best = torch.load(paths.checkpoints / "best.ckpt", weights_only=True)
    assert published["epoch"] == epochs - 1  # Lightning counts epochs from 0
    refit_weights = torch.load(paths.checkpoints / "refit" / "models" / "model.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(published["state_dict"][k], v) for k, v in refit_weights.items())
    assert not all(torch.equal(main_best["state_dict"][k], v) for k, v in refit_weights.items())


def test_a_fold_is_its_rows_of_the_pool_fitted_on_its_own_training_part_and_never_read_whole(tmp_path, monkeypatch):
    """Each fold's splits are its rows of train + val end to end, written a block at a time from
    the shards (no split in memory, so k-fold works on data past memory); its vocabulary (text)
    is its own training part's."""
    from types import SimpleNamespace

    from tests.data.test_normalise import text_split

    from reprovision.data.shards import Shards

    docs = {
        "train": [["good", "film"], ["good", "good"], ["bad", "plot", "plot"], ["bad"]],  # as long as val's
        "val": [["dull", "dull", "dull"], ["film", "plot"]],
        "test": [["film"]],
    }
    text_split(tmp_path / "split", docs)
    pool = [Shards(tmp_path / "split" / s) for s in ("train", "val")]
    stacked = np.concatenate([load_split(tmp_path / "split", s)["x"] for s in ("train", "val")])

    def never_whole(self):
        raise AssertionError(f"{self.dir} read whole")

    monkeypatch.setattr(Shards, "inputs", never_whole)
    summary = {"kind": "text", "task": "classification", "classes": ["neg", "pos"], "target": ""}
    cfg = SimpleNamespace(data=SimpleNamespace(num_words=6, max_length=None))  # 4 reserved + 2 words
    fold = (np.array([1, 3, 4]), np.array([0, 2, 5]))  # train: "good good", "bad", "dull dull dull"
    crossval.write_fold(tmp_path / "fold", pool, fold, summary, cfg, tmp_path / "split")
    monkeypatch.undo()
    for name, rows in zip(("train", "val"), fold, strict=True):
        written = load_split(tmp_path / "fold" / "split", name)["x"]
        assert np.array_equal(written[:, : stacked.shape[1]], stacked[rows])
    stats = read_json(tmp_path / "fold" / "normalised" / "stats.json")
    assert stats["inputs"]["vocabulary"][4:] == ["dull", "good"]  # the fold's own training words
    assert read_json(tmp_path / "fold" / "split" / "summary.json")["sizes"] == {"train": 3, "val": 3, "test": 0}
