"""The report's own figures beside plots.py's: how much each feature moves the predictions."""

from __future__ import annotations

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from reprovision import plots  # noqa: F401  (selects the Agg backend before any figure is drawn)


def feature_attribution_figure(features: list[str], values: np.ndarray, unit: str) -> Figure:
    """Horizontal bars of each feature's mean |attribution|, in the order given (the largest
    first, at the top)."""
    values = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(6.5, 0.8 + 0.3 * len(features)))
    positions = np.arange(len(features))
    ax.barh(positions, values, color="tab:blue")
    ax.set_yticks(positions, features, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"mean |attribution| over the test rows ({unit})")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
