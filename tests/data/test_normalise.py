"""normalise: statistics come from the training split only and apply to every split."""

from __future__ import annotations

import numpy as np

from reprovision.data.normalise import channel_stats, normalise, normalise_images
from reprovision.files import load_arrays, read_json, save_arrays, write_json


def test_channel_stats_per_channel():
    x = np.zeros((2, 3, 2, 2), dtype=np.uint8)
    x[:, 0] = 255
    x[0, 1], x[1, 1] = 0, 255
    mean, std = channel_stats(x)
    assert np.allclose(mean, [1.0, 0.5, 0.0])
    assert np.allclose(std, [1.0, 0.5, 1.0])  # constant channels are left unscaled (std 1)


def test_normalised_train_has_zero_mean_unit_std():
    x = np.random.default_rng(0).integers(0, 256, size=(50, 3, 5, 5), dtype=np.uint8)
    z = normalise_images(x, *channel_stats(x))
    assert z.dtype == np.float32
    assert np.allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    assert np.allclose(z.std(axis=(0, 2, 3)), 1, atol=1e-4)


def test_stage_uses_train_statistics_for_every_split(tiny_split, tmp_path):
    stats = normalise(tiny_split, tmp_path / "norm")
    train = load_arrays(tiny_split / "train.npz")["x"]
    assert np.allclose(stats["mean"], channel_stats(train)[0])
    assert read_json(tmp_path / "norm" / "stats.json")["classes"] == ["a", "b", "c"]
    test_raw = load_arrays(tiny_split / "test.npz")["x"]
    test_norm = load_arrays(tmp_path / "norm" / "test.npz")["x"]
    assert np.allclose(test_norm, normalise_images(test_raw, stats["mean"], stats["std"]))


def test_mean_and_std_come_from_the_training_split_alone(tmp_path):
    """Val and test images spread wider and sit elsewhere than train's: the stage's statistics, and
    so the scale of every split, are train's alone (a model tuned on val must not see val's spread)."""
    rng = np.random.default_rng(0)
    split = tmp_path / "split"
    split.mkdir()
    # Per split, each channel's pixel range (low, high): train narrow, val wide, test dark.
    ranges = {"train": [(100, 140), (20, 60)], "val": [(0, 255), (0, 255)], "test": [(0, 40), (200, 255)]}
    raw = {}
    for name, channels in ranges.items():
        raw[name] = np.stack([rng.integers(lo, hi + 1, size=(30, 5, 5)) for lo, hi in channels], 1).astype(np.uint8)
        save_arrays(split / f"{name}.npz", x=raw[name], y=np.arange(30) % 3)
    write_json(split / "summary.json", {"classes": ["a", "b", "c"], "image_shape": [2, 5, 5]})

    stats = normalise(split, tmp_path / "norm")
    train = raw["train"] / 255.0
    assert np.allclose(stats["mean"], train.mean(axis=(0, 2, 3)))
    assert np.allclose(stats["std"], train.std(axis=(0, 2, 3)))
    assert read_json(tmp_path / "norm" / "stats.json")["std"] == stats["std"]
    normalised = {s: load_arrays(tmp_path / "norm" / f"{s}.npz")["x"] for s in ranges}
    assert np.allclose(normalised["train"].mean(axis=(0, 2, 3)), 0, atol=1e-5)
    assert np.allclose(normalised["train"].std(axis=(0, 2, 3)), 1, atol=1e-4)
    # Val keeps its own, wider spread in train's units: several train standard deviations.
    assert (normalised["val"].std(axis=(0, 2, 3)) > 5).all()
