"""normalise: statistics come from the training split only and apply to every split."""

from __future__ import annotations

import numpy as np

from reprovision.data.normalise import channel_stats, normalise, normalise_images
from reprovision.files import load_arrays, read_json


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
