"""Classification and regression: what a task's model is chosen by, logs per epoch and is tested on.

The task is a property of the data (`data.task`, else the dataset's own), chosen once in config
and read from here by every stage: the loss and metrics, the best checkpoint and early stopping,
the summary, the regression check's tolerances, the registry's champion rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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

    def rank(self, row: Mapping[str, float]) -> tuple[float, float]:
        """How good a row of validation metrics is, larger better: the monitored metric, then,
        among equals, the lower validation loss (accuracy on a few dozen examples ties often, and a
        tie must not go to an epoch that is merely earlier). The one rule for the best checkpoint,
        early stopping, k-fold's epoch, the sweep's best trial and the registry's champion."""
        sign = 1.0 if self.higher_is_better else -1.0
        return sign * row[self.monitor], -row.get("val/loss", math.inf)

    def best(self, rows: list[dict[str, float]]) -> dict[str, float]:
        """The first row with the best rank (as the best checkpoint holds it)."""
        return max(rows, key=self.rank)


CLASSIFICATION = Task("classification", "acc", True, ("test/acc", "test/f1_macro", "test/loss"), "predictions")
REGRESSION = Task("regression", "mae", False, ("test/mae", "test/mse", "test/rmse", "test/r2"), "predicted_values")
TASKS = {t.name: t for t in (CLASSIFICATION, REGRESSION)}


FEW_PER_CLASS, FEW_ROWS = 20, 50  # below these a validation split chooses epochs and trials by noise


def validation_note(summary: dict) -> str | None:
    """What to do when the split stage's validation split (its summary.json) is too small to
    choose an epoch or a trial well; None when it is not."""
    val = summary["sizes"]["val"]
    if val == 0:  # a refit: no validation
        return None
    if summary["task"] == "classification":
        cls, fewest = min(summary["class_counts"]["val"].items(), key=lambda item: item[1])
        if fewest >= FEW_PER_CLASS:
            return None
        what = f"{val} validation examples, {fewest} of class {cls!r} (the fewest; {FEW_PER_CLASS} would do)"
        step = f"accuracy moves in steps of {1 / val:.1%} and ties often"
    else:
        if val >= FEW_ROWS:
            return None
        what, step = f"{val} validation rows ({FEW_ROWS} would do)", "one row moves the mean error"
    return (
        f"{what}: too few to choose the epoch well ({step}; ties go to the lower validation loss); "
        f"raise data.val_fraction (now {summary.get('val_fraction', '?')}) or cross-validate with split.folds=5"
    )
