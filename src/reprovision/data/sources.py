"""The dataset registry: where each dataset's raw files come from and how to read them."""

from __future__ import annotations

import gzip
import importlib.resources
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reprovision.errors import DataError
from reprovision.files import sha256_file


@dataclass(frozen=True)
class RawData:
    """A dataset as read from its raw files: uint8 images (N, C, H, W), int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None  # None: the dataset has no official test split
    y_test: np.ndarray | None
    classes: list[str]


@dataclass(frozen=True)
class RawFile:
    name: str
    content_sha256: str  # of the decompressed content, so a re-compressed copy is accepted


@dataclass(frozen=True)
class Source:
    description: str
    files: tuple[RawFile, ...]
    fetch: Callable[[Path], str]  # writes the files into a directory; returns where from
    read: Callable[[Path], RawData]


def content_sha256(path: Path) -> str:
    """sha256 of a file's content, decompressed first if it is gzip."""
    import hashlib

    h = hashlib.sha256()
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    except (OSError, EOFError) as e:
        raise DataError(f"{path.name}: unreadable ({e}); delete it and download again") from None
    return h.hexdigest()


# --- digits: scikit-learn's 1,797 handwritten 8x8 digits, shipped inside scikit-learn -------

DIGITS_FILE = RawFile("digits.csv.gz", "6ebb3d2fee246a4e99363262ddf8a00a3c41bee6014c373ed9d9216ba7f651b8")


def fetch_digits(dest: Path) -> str:
    import sklearn

    origin = importlib.resources.files("sklearn.datasets.data") / DIGITS_FILE.name
    with importlib.resources.as_file(origin) as src:
        shutil.copyfile(src, dest / DIGITS_FILE.name)
    return f"scikit-learn {sklearn.__version__} package data"


def read_digits(raw_dir: Path) -> RawData:
    with gzip.open(raw_dir / DIGITS_FILE.name, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    # 64 pixel values in 0..16, then the label; rescale pixels to the usual 0..255.
    pixels = np.rint(table[:, :64] * (255 / 16)).astype(np.uint8)
    return RawData(
        x_train=pixels.reshape(-1, 1, 8, 8),
        y_train=table[:, 64],
        x_test=None,
        y_test=None,
        classes=[str(d) for d in range(10)],
    )


SOURCES: dict[str, Source] = {
    "digits": Source(
        description="scikit-learn handwritten digits (1,797 8x8 greyscale images)",
        files=(DIGITS_FILE,),
        fetch=fetch_digits,
        read=read_digits,
    ),
}


def source(name: str) -> Source:
    if name not in SOURCES:
        raise DataError(f"data.name={name!r} is unknown: choose one of {', '.join(SOURCES)}")
    return SOURCES[name]


def verify_files(raw_dir: Path, files: tuple[RawFile, ...]) -> dict[str, dict[str, object]]:
    """Check every expected file's content checksum; return the manifest entries."""
    entries: dict[str, dict[str, object]] = {}
    for expected in files:
        path = raw_dir / expected.name
        if not path.is_file():
            raise DataError(f"{expected.name}: missing from {raw_dir}")
        actual = content_sha256(path)
        if actual != expected.content_sha256:
            raise DataError(
                f"{expected.name}: content checksum {actual[:12]}... does not match "
                f"the known {expected.content_sha256[:12]}...: the file is corrupt or "
                "not the dataset; fetch it again from a trusted source"
            )
        entries[expected.name] = {
            "bytes": path.stat().st_size,
            "sha256": sha256_file(path),
            "content_sha256": actual,
        }
    return entries


def check_manifest(raw_dir: Path, manifest: dict) -> None:
    """Refuse raw files that changed since download verified them."""
    for name, entry in manifest["files"].items():
        path = raw_dir / name
        if not path.is_file() or sha256_file(path) != entry["sha256"]:
            raise DataError(
                f"{path}: differs from its download manifest; "
                "rerun the download stage (dvc repro -f download)"
            )
