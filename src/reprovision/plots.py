"""Every figure the pipeline draws (matplotlib, no display needed)."""

from __future__ import annotations

import io
import math

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


SCORE_TITLES = {"acc": "accuracy", "mae": "mean absolute error"}


def curves_figure(rows: list[dict[str, float]], score: str = "acc") -> Figure:
    """Train-vs-val loss and the task's score (accuracy, mean absolute error) per epoch; with the
    cross-validation folds' mean score and its smoothed curve where the rows have them."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    epochs = [r["epoch"] for r in rows]
    for ax, metric in zip(axes, ("loss", score), strict=True):
        for split, style in (("train", "-"), ("val", "--")):
            ax.plot(
                epochs,
                [r[f"{split}/{metric}"] for r in rows],
                style,
                marker=".",
                label=f"{split}/{metric}",
            )
        if metric == score:  # k-fold cross-validation: the folds' mean and its smoothing
            for column, style in ((f"cv/val/{score}_mean", ":"), (f"cv/val/{score}_smoothed", "-.")):
                points = [(r["epoch"], r[column]) for r in rows if isinstance(r.get(column), float)]
                if points:
                    ax.plot(*zip(*points, strict=True), style, label=column.removeprefix("cv/"))
        ax.set_xlabel("epoch")
        ax.set_title(SCORE_TITLES.get(metric, metric))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def predicted_vs_actual_figure(actual: np.ndarray, predicted: np.ndarray, target: str) -> Figure:
    """Each test row's prediction against its true value, and the residuals' spread."""
    fig, (ax, hist) = plt.subplots(1, 2, figsize=(10, 4))
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    ax.plot([low, high], [low, high], color="grey", lw=1, label="perfect")
    ax.scatter(actual, predicted, s=10, alpha=0.6)
    ax.set_xlabel(f"actual {target}")
    ax.set_ylabel(f"predicted {target}")
    ax.set_title("predicted vs actual (test split)")
    ax.legend()
    residuals = predicted - actual
    hist.hist(residuals, bins=min(40, max(5, len(residuals) // 5)), color="tab:blue", alpha=0.8)
    hist.axvline(0, color="grey", lw=1)
    hist.set_xlabel(f"residual: predicted - actual {target}")
    hist.set_ylabel("test rows")
    hist.set_title(f"residuals (mean {residuals.mean():+.3g}, std {residuals.std():.3g})")
    fig.tight_layout()
    return fig


def confusion_figure(matrix: np.ndarray, classes: list[str], normalise: bool = False) -> Figure:
    """Confusion heatmap of counts, or (normalise) of each actual class's rates, values written in."""
    matrix = np.asarray(matrix)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    values = rates if normalise else matrix
    size = max(4.0, 0.5 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalise else max(int(matrix.max()), 1))
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, classes, rotation=45 if max(map(len, classes)) > 2 else 0)
    ax.set_yticks(ticks, classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    dark = values > (0.5 if normalise else matrix.max() / 2)
    # Past 20 classes the cells are too small to write in: the report lists the most confused pairs.
    for i, j in zip(*np.nonzero(matrix if len(classes) <= 20 else np.zeros_like(matrix)), strict=True):
        text = f"{rates[i, j]:.0%}" if normalise else str(matrix[i, j])
        ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark[i, j] else "black")
    label = "fraction of the actual class" if normalise else "test images"
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)
    fig.tight_layout()
    return fig


def per_class_accuracy_figure(matrix: np.ndarray, classes: list[str]) -> Figure:
    """Recall of each class (correct / actual) as bars, the overall accuracy as a line."""
    matrix = np.asarray(matrix)
    recall = np.diag(matrix) / np.maximum(matrix.sum(axis=1), 1)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(classes) + 2), 3))
    ax.bar(np.arange(len(classes)), recall, color="tab:blue")
    ax.axhline(np.trace(matrix) / max(matrix.sum(), 1), color="tab:red", linestyle="--", label="overall")
    ax.set_xticks(np.arange(len(classes)), classes, rotation=45 if max(map(len, classes)) > 2 else 0)
    ax.set_ylim(max(0.0, float(recall.min()) - 0.1), 1.0)
    ax.set_ylabel("accuracy of the class")
    ax.legend(loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def _show_image(ax, image: np.ndarray) -> None:
    """A (C, H, W) uint8 image on an axis: greyscale for one channel, RGB for three."""
    img = np.asarray(image)
    if img.shape[0] == 1:
        ax.imshow(img[0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(np.transpose(img, (1, 2, 0)))
    ax.set_axis_off()


def image_strip(images: list[np.ndarray], titles: list[str]) -> Figure:
    """A row of images with a title each (examples of one confused pair)."""
    fig, axes = plt.subplots(1, len(images), figsize=(1.3 * len(images), 1.6), squeeze=False)
    for ax, image, title in zip(axes[0], images, titles, strict=True):
        _show_image(ax, image)
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    return fig


def inspection_figure(images: np.ndarray, titles: list[str], maps: dict[str, np.ndarray]) -> Figure:
    """One row per image: the image, then each map (saliency, Grad-CAM, occlusion) over it."""
    columns = 1 + len(maps)
    fig, axes = plt.subplots(len(images), columns, figsize=(1.9 * columns, 1.9 * len(images)), squeeze=False)
    for row, (image, title) in enumerate(zip(images, titles, strict=True)):
        _show_image(axes[row, 0], image)
        axes[row, 0].set_title(title, fontsize=7)
        for col, (name, values) in enumerate(maps.items(), start=1):
            ax = axes[row, col]
            ax.imshow(np.asarray(image).mean(axis=0), cmap="gray", vmin=0, vmax=255)
            # Occlusion can be negative (hiding a region helps); the others are >= 0.
            limit = float(np.abs(values[row]).max()) or 1.0
            signed = name == "occlusion"
            ax.imshow(
                values[row],
                cmap="RdBu_r" if signed else "inferno",
                vmin=-limit if signed else 0,
                vmax=limit,
                alpha=0.6,
            )
            ax.set_axis_off()
            if row == 0:
                ax.set_title(name, fontsize=8)
    fig.tight_layout()
    return fig


def filters_figure(weights: np.ndarray) -> Figure:
    """First-layer conv filters as a grid of tiles, each scaled to its own range (RGB when the
    input has three channels, else the mean over input channels)."""
    weights = np.asarray(weights)
    count = len(weights)
    cols = min(count, 8)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(0.9 * cols, 0.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, w in zip(axes.flat, weights, strict=False):
        tile = (w - w.min()) / max(float(w.max() - w.min()), 1e-12)
        if tile.shape[0] == 3:
            ax.imshow(np.transpose(tile, (1, 2, 0)), interpolation="nearest")
        else:
            ax.imshow(tile.mean(axis=0), cmap="gray", interpolation="nearest")
    fig.tight_layout()
    return fig


def prediction_figure(image: np.ndarray, probs: np.ndarray, classes: list[str], actual: int, predicted: int) -> Figure:
    """One test image beside its class-probability bars (actual in green, wrong guess in red)."""
    fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(5, 2.2), gridspec_kw={"width_ratios": [1, 1.6]})
    _show_image(ax_img, image)
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
