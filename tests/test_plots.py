"""plots: the numbers a figure draws are the ones its caption promises."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from reprovision.plots import confusion_figure

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
