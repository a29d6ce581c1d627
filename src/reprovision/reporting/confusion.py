"""Every classification's sections, whatever its inputs: confusion matrices, the accuracy of each
class, and the most confused pairs as a table (readable at 46 classes, where the matrix is not)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from reprovision import inspection, plots
from reprovision.files import read_csv, read_json
from reprovision.reporting.page import RunFiles, figure, section, table


def misclassified(predictions: list[dict[str, str]], limit: int) -> list[dict[str, str]]:
    """Wrong predictions, the most confident first (ties by test index, so the order is fixed)."""
    wrong = [p for p in predictions if p["actual"] != p["predicted"]]
    wrong.sort(key=lambda p: (-float(p["confidence"]), int(p["index"])))
    return wrong[:limit]


def confusion_matrix(run: RunFiles) -> tuple[list[str], np.ndarray]:
    """The evaluate stage's confusion matrix of the test split: its classes and counts."""
    confusion = read_json(run.metrics_dir / "evaluation" / "confusion_matrix.json")
    return confusion["classes"], np.array(confusion["matrix"])


def pairs_table(matrix: np.ndarray, classes: list[str], limit: int) -> str:
    """The most confused (actual, predicted) pairs, largest count first, with the share of the
    actual class each one takes."""
    totals = np.maximum(matrix.sum(axis=1), 1)
    rows = [
        [classes[a], classes[p], count, f"{count / totals[a]:.0%}"]
        for a, p, count in inspection.top_confused_pairs(matrix, limit)
    ]
    if not rows:
        return "<p>No test example was misclassified.</p>"
    return table(["actual", "predicted as", "test examples", "of the actual class"], rows, "pairs")


def per_class_table(run: RunFiles) -> str:
    """Precision, recall and F1 of each class, and the name its metrics have in MLflow: a class
    name MLflow refuses in a metric name (`c++`) is logged under another (`c__`)."""
    rows = [
        [r["class"], *(f"{float(r[m]):.4f}" for m in ("precision", "recall", "f1")), r["support"], r["mlflow_name"]]
        for r in read_csv(run.metrics_dir / "evaluation" / "per_class.csv")
    ]
    header = ["class", "precision", "recall", "F1", "test examples", "in MLflow: test/precision/…, test/recall/…"]
    return table(header, rows, "per-class")


def confusion_sections(
    run: RunFiles, pair_examples: Callable[[int, int, int], str] | None = None, noun: str = "examples"
) -> list[str]:
    """Counts and rates of each actual class, the accuracy of each class, the most confused pairs
    (`pair_examples(actual, predicted, count)` adds HTML under the table for each pair)."""
    classes, matrix = confusion_matrix(run)
    limit = run.cfg.report.confused_pairs
    pairs = pairs_table(matrix, classes, limit)
    if pair_examples is not None:
        pairs += "\n" + "\n".join(pair_examples(*pair) for pair in inspection.top_confused_pairs(matrix, limit))
    counts = figure(plots.confusion_figure(matrix, classes), "confusion matrix, counts")
    rates = figure(plots.confusion_figure(matrix, classes, normalise=True), "confusion matrix, row-normalised")
    return [
        section(
            f"Confusion matrix (test split): counts and rates of each actual class ({len(classes)} classes)",
            # Side by side up to 20 classes; past that each needs the page's width to be read.
            f'<div class="row">\n{counts}\n{rates}\n</div>' if len(classes) <= 20 else f"{counts}\n{rates}",
        ),
        section(
            "Accuracy of each class",
            figure(plots.per_class_accuracy_figure(matrix, classes), "per-class accuracy")
            + "\n"
            + per_class_table(run),
        ),
        section(f"Most confused pairs (test {noun})", pairs),
    ]


def top_probabilities(prediction: dict[str, str], classes: list[str], k: int) -> list[tuple[str, float]]:
    """The `k` most probable classes of a prediction, most probable first, and the actual class
    after them if it is not among them (with 46 classes the rest would bury the answer)."""
    probs = sorted(((c, float(prediction[f"p_{c}"])) for c in classes), key=lambda cp: -cp[1])
    top = probs[:k]
    if prediction["actual"] not in {c for c, _ in top}:
        top.append(next(cp for cp in probs if cp[0] == prediction["actual"]))
    return top
