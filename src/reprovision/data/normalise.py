"""Normalisation fitted on the training split only: per-channel statistics, applied to every split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reprovision.data import SPLITS
from reprovision.files import atomic_dir, load_arrays, read_json, save_arrays, write_json


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Mean and standard deviation per channel of uint8 images (N, C, H, W), in [0, 1] units."""
    x = images.astype(np.float64) / 255.0
    mean = x.mean(axis=(0, 2, 3))
    std = x.std(axis=(0, 2, 3))
    std[std < 1e-6] = 1.0  # a constant channel carries no information: leave it unscaled
    return mean.tolist(), std.tolist()


def normalise_images(images: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """uint8 images to float32, (x / 255 - mean) / std per channel."""
    m = np.asarray(mean, dtype=np.float32)[None, :, None, None]
    s = np.asarray(std, dtype=np.float32)[None, :, None, None]
    return (images.astype(np.float32) / 255.0 - m) / s


def normalise(split_dir: Path, out_dir: Path) -> dict:
    summary = read_json(split_dir / "summary.json")
    data = {s: load_arrays(split_dir / f"{s}.npz") for s in SPLITS}
    mean, std = channel_stats(data["train"]["x"])
    stats = {
        "mean": mean,
        "std": std,
        "classes": summary["classes"],
        "image_shape": summary["image_shape"],
    }
    with atomic_dir(out_dir) as tmp:
        for s in SPLITS:
            save_arrays(tmp / f"{s}.npz", x=normalise_images(data[s]["x"], mean, std), y=data[s]["y"])
        write_json(tmp / "stats.json", stats)
    return stats
