"""sweep: trials are child runs of one parent; the best config reproduces its val/acc."""

from __future__ import annotations

import dataclasses
import random
import shutil

import pytest
from mlflow.tracking import MlflowClient
from tests.project import ROOT

from reprovision.config import RangeConfig, compose, validate
from reprovision.training.fit import train
from reprovision.training.paths import TrainPaths
from reprovision.training.sweep import narrow, run_sweep, sample


def test_random_ranges_narrow_around_the_best_trials():
    bounds = {"lr": RangeConfig(key="lr", low=1e-4, high=1e-1, log=True), "p": RangeConfig(key="p", low=0, high=1)}
    rng = random.Random(0)
    draws = [sample(rng, bounds) for _ in range(200)]
    assert all(1e-4 <= d["lr"] <= 1e-1 and 0 <= d["p"] <= 1 for d in draws)
    assert sum(d["lr"] < 1e-2 for d in draws) > 100  # log-uniform: two of three decades below 1e-2
    narrowed = narrow(bounds, [{"lr": 1e-3, "p": 0.5}, {"lr": 2e-3, "p": 0.6}], bounds)
    assert 1e-4 < narrowed["lr"].low < 1e-3 and 2e-3 < narrowed["lr"].high < 1e-2
    assert narrowed["p"].low == pytest.approx(0.475) and narrowed["p"].high == pytest.approx(0.625)


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_three_trial_search_on_digits(tmp_path, monkeypatch, sampler):
    from tests.data.formats import data_config

    from reprovision.data.normalise import normalise
    from reprovision.data.sources import download
    from reprovision.data.splitting import split

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    download(data_config(), tmp_path / "raw")
    split(data_config(), tmp_path / "raw", tmp_path / "split", seed=42)
    normalise(tmp_path / "split", tmp_path / "normalised")
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = [
        f"tracking.uri={uri}",
        "trainer.progress_bar=false",
        f"search.sampler={sampler}",
        "search.trials=3",
        "search.rounds=2",
        "search.epochs=2",
        "search.name=found",
    ]
    from omegaconf import OmegaConf

    (tmp_path / "params.yaml").write_text(OmegaConf.to_yaml(compose(conf, overrides)))
    work = tmp_path / "work"
    result = run_sweep(
        tmp_path / "params.yaml", tmp_path / "normalised", tmp_path / "split" / "summary.json", conf, work
    )

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("reprovision").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 3
    assert parents[0].data.metrics["best/val/acc"] == result["best"]["val/acc"]

    # The experiment file reproduces the best trial's validation accuracy exactly.
    cfg = validate(compose(conf, ["experiment=found", f"tracking.uri={uri}", "trainer.progress_bar=false"]))
    assert cfg.trainer.max_epochs == 2
    assert cfg.optim.lr == pytest.approx(result["best"]["optim.lr"], rel=1e-12)
    again = tmp_path / "again"
    (again).mkdir()
    (again / "params.yaml").write_text("seed: 42\n")
    paths = TrainPaths.scratch(
        again, again / "params.yaml", tmp_path / "normalised", tmp_path / "split" / "summary.json"
    )
    summary = train(cfg, paths)
    assert summary["val/acc"] == result["best"]["val/acc"]
    assert dataclasses.asdict(cfg.optim)["weight_decay"] == pytest.approx(result["best"]["optim.weight_decay"])
