"""plots: the numbers a figure draws are the ones its caption promises."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from reprovision.plots import confusion_figure, curves_figure

# Rows: actual class; columns: predicted. Class c has no test images.
MATRIX = np.array([[8, 2, 0], [1, 3, 0], [0, 0, 0]])


def drawn(fig) -> tuple[np.ndarray, dict[tuple[int, int], str]]:
    """The heatmap's cell values and the text written in each cell, by (row, column)."""
    (ax,) = [a for a in fig.axes if a.get_ylabel() == "actual"]
    cells = np.asarray(ax.images[0].get_array())
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    plt.close(fig)
    return cells, texts


def test_the_normalised_confusion_matrix_shows_each_actual_class_as_fractions_summing_to_1():
    cells, texts = drawn(confusion_figure(MATRIX, ["a", "b", "c"], normalise=True))
    assert np.allclose(cells, [[0.8, 0.2, 0], [0.25, 0.75, 0], [0, 0, 0]])
    assert np.allclose(cells[:2].sum(axis=1), 1)  # each actual class with images sums to 1
    assert texts == {(0, 0): "80%", (0, 1): "20%", (1, 0): "25%", (1, 1): "75%"}


def test_the_counts_confusion_matrix_shows_the_counts():
    cells, texts = drawn(confusion_figure(MATRIX, ["a", "b", "c"]))
    assert np.array_equal(cells, MATRIX)
    assert texts == {(0, 0): "8", (0, 1): "2", (1, 0): "1", (1, 1): "3"}


def test_the_score_panel_adds_the_folds_mean_and_its_smoothing_when_cross_validated():
    rows = [
        {"epoch": e, "train/loss": 1.0 / e, "val/loss": 1.2 / e, "train/mae": 9.0 - e, "val/mae": 10.0 - e,
         "cv/val/mae_mean": 11.0 - e, "cv/val/mae_smoothed": 12.0 - e / 2}
        for e in (1, 2, 3)
    ]  # fmt: skip
    fig = curves_figure(rows, "mae")
    loss, score = fig.axes
    assert score.get_title() == "mean absolute error"
    lines = {line.get_label(): list(line.get_ydata()) for line in score.lines}
    assert lines == {"train/mae": [8, 7, 6], "val/mae": [9, 8, 7], "val/mae_mean": [10, 9, 8],
                     "val/mae_smoothed": [11.5, 11, 10.5]}  # fmt: skip
    assert len(loss.lines) == 2
    plain = curves_figure([{k: v for k, v in r.items() if not k.startswith("cv/")} for r in rows], "mae")
    assert len(plain.axes[1].lines) == 2
    plt.close("all")
