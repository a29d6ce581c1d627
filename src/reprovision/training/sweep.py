"""Hyperparameter search scored on the validation split, never the test set.

Samplers (`search.sampler`):
- random: the classic coarse-to-fine recipe. Each round samples uniformly (log-uniformly where
  `log: true`) inside the current ranges; after it, every range shrinks to span the best
  `search.keep` trials so far, widened by a margin and kept inside the original bounds.
- tpe: Optuna's Tree-structured Parzen Estimator over the same ranges. Optuna is used directly
  rather than through Hydra's Optuna sweeper: the stages are DVC-driven commands, not
  `@hydra.main` apps, and one process keeps every trial a child of one MLflow run.

Trials are short (`search.epochs`) and each is an MLflow child run of one parent. The best
trial's whole config becomes `conf/experiment/<search.name>.yaml`, so
`dvc exp run -S experiment=<search.name>` reproduces its validation accuracy.
"""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from reprovision import tracking
from reprovision.config import Config, RangeConfig, SearchConfig, validate
from reprovision.errors import BadInput, StageFailed
from reprovision.files import atomic_file, write_json
from reprovision.tasks import Task
from reprovision.training import study as study_mod
from reprovision.training.crossval import train_and_cross_validate
from reprovision.training.paths import TrainPaths

WAIT_S = 3600  # how long a worker done with its trials waits for the others' last ones

_ABSENT = object()
MARGIN = 0.25  # a narrowed range extends this fraction of its span beyond the best trials


def sample(rng: random.Random, ranges: dict[str, RangeConfig]) -> dict[str, float]:
    """One uniform (or log-uniform) draw per range."""
    values = {}
    for key, r in ranges.items():
        value = math.exp(rng.uniform(math.log(r.low), math.log(r.high))) if r.log else rng.uniform(r.low, r.high)
        values[key] = round(value) if r.integer else value
    return values


def narrow(ranges: dict[str, RangeConfig], best: list[dict[str, float]], bounds: dict[str, RangeConfig]):
    """Ranges that span the best trials' values plus a margin, inside the original bounds."""
    out = {}
    for key, r in ranges.items():
        to, back = (math.log, math.exp) if r.log else (float, float)
        lo, hi = to(min(t[key] for t in best)), to(max(t[key] for t in best))
        span = hi - lo or (to(bounds[key].high) - to(bounds[key].low)) / 2  # one value: half the original span
        low = max(back(lo - MARGIN * span), bounds[key].low)
        high = min(back(hi + MARGIN * span), bounds[key].high)
        out[key] = dataclasses.replace(r, low=low, high=high)
    return out


def trial_config(base: Any, values: dict[str, float], epochs: int) -> Any:
    cfg = OmegaConf.create(OmegaConf.to_container(base))
    for key, value in values.items():
        if OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT:
            raise BadInput(f"search.space: {key!r} is not a key of the config; e.g. optim.lr, model.dropout")
        OmegaConf.update(cfg, key, value, merge=False)
    OmegaConf.update(cfg, "trainer.max_epochs", epochs)
    return cfg


def experiment_file(cfg: Any, note: str) -> str:
    """A Hydra experiment file that composes to exactly `cfg` (group options by name)."""
    body = {k: OmegaConf.to_container(cfg)[k] for k in ("seed", "data", "model", "optim", "trainer")}
    header = {"defaults": [{f"override /{g}": cfg[g]["name"]} for g in ("data", "model", "optim")]}
    return (
        "# @package _global_\n"
        + f"# {note}\n"
        + yaml.safe_dump(header, sort_keys=False)
        + yaml.safe_dump(body, sort_keys=False)
    )


def run_sweep(params_path: Path, data_dir: Path, summary_path: Path, conf_dir: Path, work: Path) -> dict:
    """Run the search of `params_path`'s `search` section; write the best trial's experiment
    file under `conf_dir/experiment/`. Each trial is an MLflow child run of one parent run."""
    base = OmegaConf.load(params_path)
    cfg: Config = validate(base)
    search, task = cfg.search, cfg.data.task_spec
    score = task.monitor  # val/acc (higher is better) or val/mae (lower)

    def start_parent() -> tracking.PipelineRun:
        parent = tracking.PipelineRun.start(cfg, params_path, data_dir, summary_path, name=f"sweep {search.name}")
        parent.set_tags({"sweep.sampler": search.sampler})
        return parent

    if search.storage:  # workers share one study and one MLflow parent run
        study, parent = study_mod.open_study(search, start_parent, tracking.tracking_uri(cfg), task)
    else:
        study, parent = None, start_parent()
    trials: list[dict[str, Any]] = []

    def run_trial(values: dict[str, float], number: int | None = None, shared=None) -> float:
        number = number or len(trials) + 1
        trial = trial_config(base, values, search.epochs)
        where = work / f"trial-{number}"
        where.mkdir(parents=True)
        (where / "params.yaml").write_text(OmegaConf.to_yaml(trial))
        paths = TrainPaths.scratch(where, where / "params.yaml", data_dir, summary_path)
        summary = train_and_cross_validate(
            validate(trial), paths, run_name=f"trial {number}", parent_run_id=parent.run_id
        )
        trials.append(
            {"trial": number, **values, score: summary[score], "val/loss": summary["val/loss"], "config": trial}
        )
        if shared is not None:  # the study's trial: the other workers rank it by its loss too
            shared.set_user_attr("val/loss", summary["val/loss"])
        print(
            f"sweep: trial {number}/{search.trials}: {score} {summary[score]:.4f} "
            + " ".join(f"{k}={v:.3g}" for k, v in values.items())
        )
        return summary[score]

    if study is not None:
        return search_shared(search, task, study, parent, base, run_trial, conf_dir, work)
    if search.sampler == "random":
        search_random(search, task, cfg.seed, run_trial, trials)
    else:
        search_tpe(search, task, cfg.seed, run_trial)
    return record_best(search, task, trials, parent, conf_dir, work)


def ranked(trials: list[dict[str, Any]], task: Task) -> list[dict[str, Any]]:
    """Trials best first by the task's rule (Task.rank: ties to the lower validation loss); among
    equals the earliest first."""
    return sorted(trials, key=task.rank, reverse=True)


def search_random(search: SearchConfig, task: Task, seed: int, run_trial, trials: list[dict[str, Any]]) -> None:
    """Coarse to fine: each round samples inside the current ranges, then narrows them."""
    rng = random.Random(seed)
    bounds = {r.key: r for r in search.space}
    ranges = dict(bounds)
    per_round = [search.trials // search.rounds + (i < search.trials % search.rounds) for i in range(search.rounds)]
    for n in per_round:
        for _ in range(n):
            run_trial(sample(rng, ranges))
        best = ranked(trials, task)[: search.keep]
        ranges = narrow(ranges, best, bounds)


def search_tpe(search: SearchConfig, task: Task, seed: int, run_trial) -> None:
    """Optuna's TPE sampler over the same ranges, maximising val/acc (minimising val/mae), in this process."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = "maximize" if task.higher_is_better else "minimize"
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(lambda t: run_trial(suggest(t, search)), n_trials=search.trials)


def suggest(t, search: SearchConfig) -> dict[str, float]:
    """One Optuna trial's draw from every range of the search space."""
    return {
        r.key: (
            t.suggest_int(r.key, int(r.low), int(r.high), log=r.log)
            if r.integer
            else t.suggest_float(r.key, r.low, r.high, log=r.log)
        )
        for r in search.space
    }


def search_shared(search: SearchConfig, task: Task, study, parent, base, run_trial, conf_dir: Path, work: Path):
    """Draw trials from the shared study until it holds `search.trials` (counting the other
    workers' running ones), wait for those to end, then record the study's best: every worker
    writes the same experiment file."""
    import optuna
    from optuna.study import MaxTrialsCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING)
    stop = MaxTrialsCallback(search.trials, states=done)
    # Until the study holds enough finished trials: a trial whose worker died (even the last one the
    # study needed) is failed while waiting, and its values, queued again, run in the next round.
    while len(study_mod.completed(study)) < search.trials:
        study_mod.fail_stale(study)
        if len([t for t in study.trials if t.state in done]) < search.trials:
            study.optimize(lambda t: run_trial(suggest(t, search), t.number + 1, t), callbacks=[stop])
        if not study_mod.wait_for_others(study, timeout_s=WAIT_S):
            raise StageFailed(f"study {study.study_name!r}: other workers' trials still run after {WAIT_S} s")
    trials = [
        {
            "trial": t.number + 1,
            **t.params,
            task.monitor: t.value,
            "val/loss": t.user_attrs.get("val/loss", math.inf),
            "config": trial_config(base, t.params, search.epochs),
        }
        for t in study_mod.completed(study)
    ]
    return record_best(search, task, trials, parent, conf_dir, work)


def record_best(search: SearchConfig, task: Task, trials: list[dict], parent, conf_dir: Path, work: Path) -> dict:
    """The best trial's config as conf/experiment/<name>.yaml; the trial table to MLflow."""
    best = ranked(trials, task)[0]  # the first of equals: the earliest trial
    score = task.monitor
    note = (
        f"Best of sweep {search.name!r} ({search.sampler}, {len(trials)} trials): {score} {best[score]:.4f} "
        f"in trial {best['trial']} (MLflow run {parent.run_id}). dvc exp run -S experiment={search.name}"
    )
    path = conf_dir / "experiment" / f"{search.name}.yaml"
    with atomic_file(path) as tmp:
        tmp.write_text(experiment_file(best["config"], note))
    table = [{k: v for k, v in t.items() if k != "config"} for t in trials]
    write_json(work / "trials.json", table)
    parent.log_artifact(work / "trials.json", "sweep")
    parent.log_artifact(path, "sweep")
    parent.log_metrics({f"best/{score}": best[score]})
    parent.set_status("FINISHED")
    best = {k: v for k, v in best.items() if k != "config"}
    return {"best": best, "score": score, "trials": table, "experiment": str(path)}
