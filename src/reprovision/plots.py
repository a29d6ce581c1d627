"""Every figure the pipeline draws (matplotlib, no display needed)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # files only: no display on CI machines or servers

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # No timestamp in the PNG metadata, so the same figure gives the same bytes.
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def curves_figure(rows: list[dict[str, float]]) -> Figure:
    """Train-vs-val loss and accuracy per epoch."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    epochs = [r["epoch"] for r in rows]
    for ax, metric in zip(axes, ("loss", "acc"), strict=True):
        for split, style in (("train", "-"), ("val", "--")):
            ax.plot(
                epochs,
                [r[f"{split}/{metric}"] for r in rows],
                style,
                marker=".",
                label=f"{split}/{metric}",
            )
        ax.set_xlabel("epoch")
        ax.set_title("loss" if metric == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def confusion_figure(matrix: np.ndarray, classes: list[str]) -> Figure:
    """Confusion heatmap: colour is the row-normalised rate, the text the count."""
    matrix = np.asarray(matrix)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.5 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, classes, rotation=45 if max(map(len, classes)) > 2 else 0)
    ax.set_yticks(ticks, classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    for i in range(len(classes)):
        for j in range(len(classes)):
            if matrix[i, j]:
                ax.text(
                    j,
                    i,
                    str(matrix[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if rates[i, j] > 0.5 else "black",
                )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the actual class")
    fig.tight_layout()
    return fig


def prediction_figure(image: np.ndarray, probs: np.ndarray, classes: list[str], actual: int, predicted: int) -> Figure:
    """One test image beside its class-probability bars (actual in green, wrong guess in red)."""
    fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(5, 2.2), gridspec_kw={"width_ratios": [1, 1.6]})
    img = np.asarray(image)
    if img.shape[0] == 1:
        ax_img.imshow(img[0], cmap="gray", vmin=0, vmax=255)
    else:
        ax_img.imshow(np.transpose(img, (1, 2, 0)))
    ax_img.set_axis_off()
    ax_img.set_title(f"actual {classes[actual]}\npredicted {classes[predicted]}", fontsize=9)
    colours = ["tab:gray"] * len(classes)
    colours[predicted] = "tab:red"
    colours[actual] = "tab:green"
    ax_bar.barh(np.arange(len(classes)), probs, color=colours)
    ax_bar.set_yticks(np.arange(len(classes)), classes, fontsize=7)
    ax_bar.invert_yaxis()
    ax_bar.set_xlim(0, 1)
    ax_bar.set_xlabel("probability", fontsize=8)
    ax_bar.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return fig
