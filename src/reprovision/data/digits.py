"""digits: scikit-learn's 1,797 handwritten 8x8 digits, shipped inside scikit-learn."""

from __future__ import annotations

import gzip
import importlib.resources
from pathlib import Path
from typing import Any

import numpy as np

from reprovision.data.raw import RawData, RawFile

DIGITS_FILES = (RawFile("digits.csv.gz", content_md5="a0339c30a8a5312a1b6f9e5c719dcce5"),)


def sklearn_data_dir() -> tuple[str, ...]:
    """Where scikit-learn keeps digits.csv.gz: the one 'URL' the digits are fetched from."""
    return (str(importlib.resources.files("sklearn.datasets.data")),)


def read_digits(raw_dir: Path, cfg: Any = None, files: tuple[RawFile, ...] = DIGITS_FILES) -> RawData:
    with gzip.open(raw_dir / "digits.csv.gz", "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    # 64 pixel values in 0..16, then the label; rescale pixels to the usual 0..255.
    pixels = np.rint(table[:, :64] * (255 / 16)).astype(np.uint8)
    return RawData(pixels.reshape(-1, 1, 8, 8), table[:, 64], None, None, [str(d) for d in range(10)])
