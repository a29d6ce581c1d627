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


@pytest.mark.slow
def test_two_workers_share_one_optuna_study_and_one_mlflow_parent(tmp_path, monkeypatch):
    """Two `reprovision sweep` processes on one SQLite study, as two SLURM array tasks would run:
    no trial twice, one parent run, the same best trial written from either side."""
    import subprocess
    import sys

    import optuna
    from omegaconf import OmegaConf
    from tests.data.formats import data_config

    from reprovision.data.normalise import normalise
    from reprovision.data.sources import download
    from reprovision.data.splitting import split

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    download(data_config(), tmp_path / "raw")
    split(data_config(), tmp_path / "raw", tmp_path / "split", seed=42)
    normalise(tmp_path / "split", tmp_path / "normalised")
    uri, storage = f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'optuna.db'}"
    overrides = [f"tracking.uri={uri}", "trainer.progress_bar=false", "search.sampler=tpe", "search.trials=4"]
    overrides += ["search.epochs=1", "search.name=common", f"search.storage={storage}"]
    (tmp_path / "params.yaml").write_text(OmegaConf.to_yaml(compose(ROOT / "conf", overrides)))
    workers = []
    for i in (1, 2):
        shutil.copytree(ROOT / "conf", tmp_path / f"conf{i}")
        cmd = [sys.executable, "-m", "reprovision", "sweep", "--params", str(tmp_path / "params.yaml")]
        cmd += ["--data", str(tmp_path / "normalised"), "--summary", str(tmp_path / "split" / "summary.json")]
        workers.append(
            subprocess.Popen([*cmd, "--conf", str(tmp_path / f"conf{i}")], stderr=subprocess.PIPE, text=True)
        )
    for worker in workers:
        assert worker.wait(timeout=600) == 0, worker.stderr.read()

    study = optuna.load_study(study_name="common", storage=storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert 4 <= len(done) <= 5  # at most one more: each worker checks the count after its trial
    assert len({tuple(sorted(t.params.items())) for t in done}) == len(done)  # no trial drawn twice
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("reprovision").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.info.run_name for r in children) == sorted(f"trial {t.number + 1}" for t in done)
    first, second = ((tmp_path / f"conf{i}" / "experiment" / "common.yaml").read_text() for i in (1, 2))
    assert first == second and f"val/acc {max(t.value for t in done):.4f}" in first


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_trial_whose_worker_died_is_failed_and_its_values_run_again_by_a_rerun(tmp_path, monkeypatch):
    """A worker killed mid-trial stops sending heartbeats. A rerun of the sweep, even where that was
    the last trial the study needed, marks it failed, runs its values again and records the best.
    Opening the study warns of nothing deprecated."""
    import warnings

    import optuna

    from reprovision import tracking
    from reprovision.tasks import TASKS
    from reprovision.training import study as study_mod
    from reprovision.training import sweep as sweep_mod

    monkeypatch.setattr(study_mod, "HEARTBEAT_S", 1)  # stale after 3 s without a heartbeat
    monkeypatch.setattr(sweep_mod, "WAIT_S", 60)  # waiting on the dead trial fails here, not after an hour
    monkeypatch.setattr(sweep_mod, "record_best", lambda search, task, trials, *rest: trials)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    overrides = [
        f"search.storage={storage}",
        "search.sampler=tpe",
        "search.name=retried",
        "search.trials=2",
        "search.rounds=1",
    ]
    base = compose(ROOT / "conf", overrides)
    search, task = validate(base).search, TASKS["classification"]

    def start_parent():
        return tracking.PipelineRun({"run_id": "parent", "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"})

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study, _ = study_mod.open_study(search, start_parent, "", task)
    assert not [w for w in caught if issubclass(w.category, (FutureWarning, optuna.exceptions.ExperimentalWarning))]
    study.optimize(lambda t: sweep_mod.suggest(t, search) and 0.4, n_trials=1)  # one trial finished
    died = study.ask()  # the second, the study's last: its worker sends one heartbeat, then dies
    values = sweep_mod.suggest(died, search)
    study._storage.record_heartbeat(died._trial_id)

    rerun, _ = study_mod.open_study(search, start_parent, "", task)
    tried = []
    trials = sweep_mod.search_shared(
        search, task, rerun, None, base, lambda v, number, trial: tried.append(v) or 0.5, tmp_path, tmp_path
    )
    assert tried == [values]
    assert rerun.trials[died.number].state == optuna.trial.TrialState.FAIL
    assert sorted(t[task.monitor] for t in trials) == [0.4, 0.5]
