"""diabetes: scikit-learn's 442 patients, ten baseline measurements and disease progression a year on."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np

from reprovision.data.raw import RawData, RawFile
from reprovision.errors import DataError

# md5 of the decompressed files as scikit-learn ships them (sklearn/datasets/data/): the raw,
# unscaled values (load_diabetes(scaled=False)), one whitespace-separated row per patient.
DIABETES_FILES = (
    RawFile("diabetes_data_raw.csv.gz", content_md5="e022ac43b66f542dff1d4b331d7eef66"),
    RawFile("diabetes_target.csv.gz", content_md5="3e3835cad7a1565b5142786dfbd64bc6"),
)
DIABETES_FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def _load(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rt", encoding="ascii") as f:
            return np.loadtxt(f, dtype=np.float64, ndmin=2)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path.name}: not scikit-learn's table of numbers ({e})") from None


def read_diabetes(raw_dir: Path, cfg: Any = None, files: tuple[RawFile, ...] = DIABETES_FILES) -> RawData:
    data, target = (raw_dir / f.name for f in files)
    x, y = _load(data), _load(target)
    if x.shape[1] != len(DIABETES_FEATURES) or y.shape != (len(x), 1):
        raise DataError(f"{data.name}, {target.name}: {x.shape} and {y.shape}, not (N, 10) and (N, 1)")
    return RawData(
        x.astype(np.float32),
        y[:, 0].astype(np.float32),
        None,
        None,
        [],
        kind="table",
        task="regression",
        features=list(DIABETES_FEATURES),
        target="progression",
    )
