"""Every file a fit reads and writes, named once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TrainPaths:
    params: Path  # the resolved config that ran (logged whole to MLflow)
    data: Path  # the normalise stage's stats.json (and text's encoded splits)
    summary: Path  # the split stage's summary.json; its directory holds the uint8 splits
    checkpoints: Path  # best/last checkpoints, resume.json and run.json, kept across runs
    out: Path  # the model directory: model.ckpt, a function of config, data and code
    metrics: Path  # summary metrics JSON
    curves: Path  # per-epoch curves CSV
    timing: Path | None = None  # where the stage's time went (JSON)

    @classmethod
    def scratch(cls, where: Path, params: Path, data: Path, summary: Path) -> TrainPaths:
        """A fit's outputs under one directory: a cross-validation fold's or a sweep trial's."""
        return cls(
            params, data, summary, where / "checkpoints", where / "models", where / "train.json", where / "curves.csv"
        )
