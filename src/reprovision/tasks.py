"""Classification and regression: what a task's model is chosen by, logs per epoch and is tested on.

The task is a property of the data (`data.task`, else the dataset's own), chosen once in config
and read from here by every stage: the loss and metrics, the best checkpoint and early stopping,
the summary, the regression check's tolerances, the registry's champion rule.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    name: str
    score: str  # the per-epoch metric beside the loss, the one the best epoch is chosen by
    higher_is_better: bool
    test_metrics: tuple[str, ...]  # the evaluate stage's headline (metrics/eval.json), in order
    rows: str  # metrics/evaluation/<rows>.csv: one row per test example

    @property
    def monitor(self) -> str:
        """The validation metric that chooses the best checkpoint, stops early, crowns a champion."""
        return f"val/{self.score}"

    @property
    def mode(self) -> str:
        """Lightning's spelling of the direction: max or min."""
        return "max" if self.higher_is_better else "min"

    @property
    def curve_columns(self) -> tuple[str, ...]:
        """metrics/curves.csv's columns, in order."""
        return ("epoch", "train/loss", f"train/{self.score}", "val/loss", f"val/{self.score}", "train/lr")

    def best(self, rows: list[dict[str, float]]) -> dict[str, float]:
        """The first row with the best monitored value (as the best checkpoint holds it)."""
        sign = 1.0 if self.higher_is_better else -1.0
        return max(rows, key=lambda r: sign * r[self.monitor])

    def better(self, a: float, b: float) -> bool:
        """Whether monitored value `a` is strictly better than `b`."""
        return a > b if self.higher_is_better else a < b


CLASSIFICATION = Task("classification", "acc", True, ("test/acc", "test/f1_macro", "test/loss"), "predictions")
REGRESSION = Task("regression", "mae", False, ("test/mae", "test/mse", "test/rmse", "test/r2"), "predicted_values")
TASKS = {t.name: t for t in (CLASSIFICATION, REGRESSION)}
