"""Shared fixtures: the project root, and tiny splits for stage tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprovision.numerics import Numerics, pin

# This process computes as a stage's process does (pinned before numpy and torch load): a stage run
# in-process here gives the bytes the same stage gives as its own process (a resumed run, compared
# with an uninterrupted one).
pin(Numerics())

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def tiny_split(tmp_path: Path) -> Path:
    """A split directory like the split stage writes: 3 classes of 4x4 greyscale images."""
    from reprovision.data.shards import save_split
    from reprovision.files import write_json

    rng = np.random.default_rng(0)
    out = tmp_path / "split"
    out.mkdir()
    for split, n in (("train", 60), ("val", 15), ("test", 15)):
        y = np.arange(n) % 3
        # Class k is brighter in row k: learnable, not trivially constant.
        x = rng.integers(0, 60, size=(n, 1, 4, 4), dtype=np.uint8)
        x[np.arange(n), 0, y, :] += 180
        save_split(out, split, x, y.astype(np.int64))
    sizes = {"train": 60, "val": 15, "test": 15}
    write_json(
        out / "summary.json",
        {
            "dataset": "tiny",
            "kind": "image",
            "task": "classification",
            "target": "",
            "classes": ["a", "b", "c"],
            "image_shape": [1, 4, 4],
            "raw_bytes": 0,
            "sizes": sizes,
            "class_counts": {s: {c: n // 3 for c in "abc"} for s, n in sizes.items()},
        },
    )
    return out
