"""k-fold cross-validation of the training data: one model per fold, val/acc as mean ± std.

The training and validation splits are pooled and cut into k stratified folds; for each fold
the channel statistics come from its training part only, and the test split is never read.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from reprovision.config import Config
from reprovision.files import load_arrays, read_json, save_arrays, write_json
from reprovision.stages.normalise import channel_stats, normalise_images


def fold_indices(labels: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, val) index arrays per fold: stratified, seeded, every sample validated once."""
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(np.sort(tr), np.sort(va)) for tr, va in folds.split(np.zeros(len(labels)), labels)]


def cross_validate(cfg: Config, params_path: Path, split_dir: Path, parent_run_id: str) -> dict[str, float]:
    from reprovision.stages.train import train  # the same training, one fold at a time

    k = cfg.split.folds
    parts = [load_arrays(split_dir / f"{s}.npz") for s in ("train", "val")]
    x = np.concatenate([p["x"] for p in parts])
    y = np.concatenate([p["y"] for p in parts])
    summary = read_json(split_dir / "summary.json")
    fold_cfg = dataclasses.replace(cfg, split=dataclasses.replace(cfg.split, folds=None))
    scores = []
    with tempfile.TemporaryDirectory(prefix="folds-") as tmp:
        for i, (tr, va) in enumerate(fold_indices(y, k, cfg.seed), start=1):
            where = Path(tmp) / f"fold-{i}"
            data = where / "normalised"
            data.mkdir(parents=True)
            mean, std = channel_stats(x[tr])
            save_arrays(data / "train.npz", x=normalise_images(x[tr], mean, std), y=y[tr])
            save_arrays(data / "val.npz", x=normalise_images(x[va], mean, std), y=y[va])
            write_json(
                data / "stats.json",
                {"mean": mean, "std": std, "classes": summary["classes"], "image_shape": summary["image_shape"]},
            )
            fold_summary = {**summary, "sizes": {"train": len(tr), "val": len(va), "test": 0}}
            write_json(where / "summary.json", fold_summary)
            result = train(
                fold_cfg,
                params_path,
                data,
                where / "summary.json",
                where / "checkpoints",
                where / "models",
                where / "train.json",
                where / "curves.csv",
                run_name=f"fold {i}/{k}",
                parent_run_id=parent_run_id,
            )
            scores.append(result["val/acc"])
            print(f"train: fold {i}/{k}: val/acc {result['val/acc']:.4f}")
    return {
        "cv/val/acc_mean": statistics.fmean(scores),
        "cv/val/acc_std": statistics.stdev(scores),
        "cv/folds": float(k),
    }
