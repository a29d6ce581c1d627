"""k-fold cross-validation of the training data: one model per fold, the monitored validation
metric (val/acc, val/mae) as mean ± std.

The training and validation splits are pooled and cut into k folds (stratified by class for
classification); for each fold the normalisation is fitted on its training part only, and the
test split is never read.
The train stage hands `cross_validate` to the fit as its `after_fit`: the folds run once the
main model is trained, as MLflow child runs of its run. With `split.refit` the model the stage
publishes is then retrained, as one more child run, on the training and validation splits
together for the epoch count the folds chose (the classic k-fold recipe's final model).
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import tempfile
from pathlib import Path

import numpy as np

from reprovision.config import Config
from reprovision.data import normalise
from reprovision.data.shards import Shards, write_rows
from reprovision.files import read_csv, read_json, write_json
from reprovision.training.fit import train
from reprovision.training.paths import TrainPaths


def fold_indices(labels: np.ndarray, k: int, seed: int, stratify: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, val) index arrays per fold: seeded, stratified by class unless `stratify` is False
    (regression), every sample validated once."""
    from sklearn.model_selection import KFold, StratifiedKFold  # here: a second of every train's start-up

    folds = (
        StratifiedKFold(k, shuffle=True, random_state=seed) if stratify else KFold(k, shuffle=True, random_state=seed)
    )
    return [(np.sort(tr), np.sort(va)) for tr, va in folds.split(np.zeros(len(labels)), labels)]


def write_fold(where: Path, pool: list[Shards], fold: tuple, summary: dict, cfg: Config, split_dir: Path):
    """A fold's train/val splits (its rows of the `pool`ed splits) and summary in `where/split`,
    and in `where/normalised` the fit on its training part (stats.json; for text, each part's
    encoding), all written a block at a time."""
    tr, va = fold
    data, split = where / "normalised", where / "split"
    data.mkdir(parents=True)
    for name, rows in (("train", tr), ("val", va)):
        write_rows(split / name, pool, rows)
    kind = summary.get("kind", "image")
    parts = {name: Shards(split / name) for name in ("train", "val")}
    inputs, encode = normalise.fit(kind, parts["train"], split_dir, cfg.data.num_words, cfg.data.max_length)
    if encode is not None:
        normalise.write_encoded(data, parts, encode, inputs)
    stats = {"task": summary["task"], "classes": summary["classes"], "target": summary["target"], "inputs": inputs}
    write_json(data / "stats.json", stats)
    write_json(split / "summary.json", {**summary, "sizes": {"train": len(tr), "val": len(va), "test": 0}})


def cross_validate(cfg: Config, paths: TrainPaths, parent_run_id: str) -> dict[str, float]:
    """Train one model per fold of the pooled train+val splits; their monitored metric's mean and spread."""
    k, task = cfg.split.folds, cfg.data.task_spec
    split_dir = paths.summary.parent
    pool = [Shards(split_dir / s) for s in ("train", "val")]
    y = np.concatenate([p.y for p in pool])
    summary = read_json(paths.summary)
    fold_cfg = dataclasses.replace(cfg, split=dataclasses.replace(cfg.split, folds=None, refit=False))
    scores, curves, losses = [], [], []
    with tempfile.TemporaryDirectory(prefix="folds-") as tmp:
        for i, fold in enumerate(fold_indices(y, k, cfg.seed, task.name == "classification"), start=1):
            where = Path(tmp) / f"fold-{i}"
            write_fold(where, pool, fold, summary, cfg, split_dir)
            fold_paths = TrainPaths.scratch(where, paths.params, where / "normalised", where / "split" / "summary.json")
            result = train(fold_cfg, fold_paths, run_name=f"fold {i}/{k}", parent_run_id=parent_run_id)
            scores.append(result[task.monitor])
            rows = read_csv(fold_paths.curves)
            curves.append([float(r[task.monitor]) for r in rows])
            losses.append([float(r["val/loss"]) for r in rows])
            print(f"train: fold {i}/{k}: {task.monitor} {result[task.monitor]:.4f}")
    per_epoch, loss_curve = fold_mean_curve(curves, task.monitor), fold_mean_curve(losses, "val/loss")
    best = chosen_epoch(per_epoch, loss_curve, task)
    per_epoch = {epoch: {**row, **loss_curve[epoch]} for epoch, row in per_epoch.items()}  # both in curves.csv
    print(f"train: {k} folds: {task.monitor} {statistics.fmean(scores):.4f}; best epoch by the smoothed mean {best}")
    added = {
        f"cv/{task.monitor}_mean": statistics.fmean(scores),
        f"cv/{task.monitor}_std": statistics.stdev(scores),
        "cv/folds": float(k),
        "cv/best_epoch": float(best),
        "per_epoch": per_epoch,
    }
    if cfg.split.refit:
        added.update(refit(cfg, paths, best, parent_run_id))
    return added


def refit(cfg: Config, paths: TrainPaths, epochs: int, parent_run_id: str) -> dict:
    """Train the model to publish on the training and validation splits together for `epochs`
    epochs, with no validation: the final epoch is kept. The inputs stay normalised with the
    statistics the normalise stage fitted on the training split (the checkpoint carries them and
    the test split was normalised with them). Its directory sits beside the checkpoints, so a
    killed refit resumes."""
    where = paths.checkpoints / "refit"
    # Its split apart from its outputs: the resume fingerprint hashes every file of a split.
    data, split = where / "normalised", where / "split"
    for directory in (data, split):
        directory.mkdir(parents=True, exist_ok=True)
    # The rows the net reads (for text, encoded with the training split's vocabulary), pooled.
    kind = read_json(paths.data / "stats.json")["inputs"]["kind"]
    parts = [normalise.net_shards(paths.summary.parent, paths.data, s, kind) for s in ("train", "val")]
    shutil.copyfile(paths.data / "stats.json", data / "stats.json")
    pooled_dir = data if kind == "text" else split  # where net_shards looks for them
    write_rows(pooled_dir / "train", parts, np.arange(len(parts[0]) + len(parts[1])))
    write_rows(pooled_dir / "val", parts[1:], np.arange(len(parts[1])))  # the data module reads it; no validation runs
    summary = read_json(paths.summary)
    examples = len(parts[0]) + len(parts[1])
    write_json(split / "summary.json", {**summary, "sizes": {"train": examples, "val": 0, "test": 0}})
    refit_cfg = dataclasses.replace(
        cfg,
        split=dataclasses.replace(cfg.split, folds=None, refit=False),
        trainer=dataclasses.replace(cfg.trainer, max_epochs=epochs),
    )
    refit_paths = TrainPaths.scratch(where, paths.params, data, split / "summary.json")
    name = f"refit on train + val, {epochs} epochs"
    train(refit_cfg, refit_paths, run_name=name, parent_run_id=parent_run_id, validate=False)
    print(f"train: {name} ({examples} examples): this model is the one evaluated and served")
    return {"refit/epochs": float(epochs), "refit/examples": float(examples), "model": refit_paths.out / "model.ckpt"}


SMOOTHING = 0.9  # the classic recipe's exponential moving average of the fold-mean curve


def fold_mean_curve(curves: list[list[float]], monitor: str) -> dict[int, dict[str, float]]:
    """Per epoch (those every fold ran), the folds' mean `monitor` and its exponential moving
    average (factor SMOOTHING): the curve that chooses the epoch count when one validation split
    is too noisy. Keyed by epoch, 1-based, for metrics/curves.csv and MLflow."""
    out: dict[int, dict[str, float]] = {}
    smoothed = None
    for epoch in range(1, min(map(len, curves)) + 1):
        mean = statistics.fmean(c[epoch - 1] for c in curves)
        smoothed = mean if smoothed is None else SMOOTHING * smoothed + (1 - SMOOTHING) * mean
        out[epoch] = {f"cv/{monitor}_mean": mean, f"cv/{monitor}_smoothed": smoothed}
    return out


def chosen_epoch(monitored: dict[int, dict[str, float]], losses: dict[int, dict[str, float]], task) -> int:
    """The epoch whose smoothed fold-mean metric ranks best by the task's rule (Task.rank): ties to
    the lower smoothed fold-mean validation loss, then to the earlier epoch."""
    rows = [
        {task.monitor: monitored[e][f"cv/{task.monitor}_smoothed"], "val/loss": losses[e]["cv/val/loss_smoothed"]}
        for e in monitored
    ]
    return rows.index(task.best(rows)) + 1


def train_and_cross_validate(cfg: Config, paths: TrainPaths, **kwargs) -> dict | None:
    """`train`, handing it k-fold cross-validation of the training data when `split.folds` is set."""
    folds = (lambda run_id: cross_validate(cfg, paths, run_id)) if cfg.split.folds else None
    return train(cfg, paths, after_fit=folds, **kwargs)
