"""k-fold cross-validation of the training data: one model per fold, val/acc as mean ± std.

The training and validation splits are pooled and cut into k stratified folds; for each fold
the channel statistics come from its training part only, and the test split is never read.
The train stage hands `cross_validate` to the fit as its `after_fit`: the folds run once the
main model is trained, as MLflow child runs of its run.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from reprovision.config import Config
from reprovision.data.normalise import channel_stats, normalise_images
from reprovision.files import load_arrays, read_json, save_arrays, write_json
from reprovision.training.fit import train
from reprovision.training.paths import TrainPaths


def fold_indices(labels: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, val) index arrays per fold: stratified, seeded, every sample validated once."""
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(np.sort(tr), np.sort(va)) for tr, va in folds.split(np.zeros(len(labels)), labels)]


def write_fold(where: Path, x: np.ndarray, y: np.ndarray, tr: np.ndarray, va: np.ndarray, summary: dict) -> None:
    """A fold's normalised train/val splits (statistics from its training part) and summary."""
    data = where / "normalised"
    data.mkdir(parents=True)
    mean, std = channel_stats(x[tr])
    save_arrays(data / "train.npz", x=normalise_images(x[tr], mean, std), y=y[tr])
    save_arrays(data / "val.npz", x=normalise_images(x[va], mean, std), y=y[va])
    write_json(
        data / "stats.json",
        {"mean": mean, "std": std, "classes": summary["classes"], "image_shape": summary["image_shape"]},
    )
    write_json(where / "summary.json", {**summary, "sizes": {"train": len(tr), "val": len(va), "test": 0}})


def cross_validate(cfg: Config, paths: TrainPaths, parent_run_id: str) -> dict[str, float]:
    """Train one model per fold of the pooled train+val splits; their val/acc mean and spread."""
    k = cfg.split.folds
    split_dir = paths.summary.parent
    parts = [load_arrays(split_dir / f"{s}.npz") for s in ("train", "val")]
    x = np.concatenate([p["x"] for p in parts])
    y = np.concatenate([p["y"] for p in parts])
    summary = read_json(paths.summary)
    fold_cfg = dataclasses.replace(cfg, split=dataclasses.replace(cfg.split, folds=None))
    scores = []
    with tempfile.TemporaryDirectory(prefix="folds-") as tmp:
        for i, (tr, va) in enumerate(fold_indices(y, k, cfg.seed), start=1):
            where = Path(tmp) / f"fold-{i}"
            write_fold(where, x, y, tr, va, summary)
            fold = TrainPaths.scratch(where, paths.params, where / "normalised", where / "summary.json")
            result = train(fold_cfg, fold, run_name=f"fold {i}/{k}", parent_run_id=parent_run_id)
            scores.append(result["val/acc"])
            print(f"train: fold {i}/{k}: val/acc {result['val/acc']:.4f}")
    return {
        "cv/val/acc_mean": statistics.fmean(scores),
        "cv/val/acc_std": statistics.stdev(scores),
        "cv/folds": float(k),
    }


def train_and_cross_validate(cfg: Config, paths: TrainPaths, **kwargs) -> dict | None:
    """`train`, handing it k-fold cross-validation of the training data when `split.folds` is set."""
    folds = (lambda run_id: cross_validate(cfg, paths, run_id)) if cfg.split.folds else None
    return train(cfg, paths, after_fit=folds, **kwargs)
