"""The dataset registry: where each dataset's raw files come from, how to check and read them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprovision.data.archives import Limits
from reprovision.data.cifar import CIFAR10_CLASSES, CIFAR10_FILE, CIFAR10_URLS, read_cifar10
from reprovision.data.diabetes import DIABETES_FILES, read_diabetes
from reprovision.data.digits import DIGITS_FILES, read_digits, sklearn_data_dir
from reprovision.data.fetch import fetch_first
from reprovision.data.idx import FASHION_FILES, FASHION_URLS, MNIST_FILES, MNIST_URLS, read_fashion_mnist, read_mnist
from reprovision.data.imagefolder import check_imagefolder, decode_image, fetch_imagefolder, read_imagefolder
from reprovision.data.keras import (
    BOSTON_FILES,
    IMDB_FILES,
    KERAS_URLS,
    REUTERS_FILES,
    read_boston_housing,
    read_imdb,
    read_reuters,
)
from reprovision.data.raw import RawData, RawFile
from reprovision.data.table import fetch_table, read_table
from reprovision.data.textfolder import fetch_textfolder, read_textfolder
from reprovision.data.verify import check_manifest, verify_file
from reprovision.errors import DataError
from reprovision.files import atomic_dir, sha256_file, write_json
from reprovision.urls import masked

# RawData, RawFile, check_manifest, CIFAR10_CLASSES and decode_image are re-exported: callers
# import them from here.
__all__ = [
    "CIFAR10_CLASSES",
    "DATASETS",
    "IMAGEFOLDER",
    "SOURCES",
    "TABLE",
    "TEXTFOLDER",
    "RawData",
    "RawFile",
    "Source",
    "check_manifest",
    "check_name",
    "check_task",
    "decode_image",
    "download",
    "fetch",
    "read",
]

log = logging.getLogger("reprovision.download")
IMAGEFOLDER, TABLE, TEXTFOLDER = "imagefolder", "table", "textfolder"


def _nowhere() -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class Source:
    description: str
    files: tuple[RawFile, ...]
    urls: Callable[[], tuple[str, ...]]  # official locations (torchvision's, Keras's), after data.mirror
    # read(raw_dir, cfg, files): `files` is this Source's own, so a replaced spec is the one read.
    read: Callable[[Path, Any, tuple[RawFile, ...]], RawData]
    task: str | None = "classification"  # what its targets are; None: data.task chooses (a table)
    # The user's own data: from_path(data.path, raw_dir, cfg) copies it in and says where it came
    # from; `files` and `urls` are then empty.
    from_path: Callable[[str, Path, Any], str] | None = None
    # check(raw_dir, cfg, files): how from_path's data is verified at download (default: read it all).
    check: Callable[[Path, Any, tuple[RawFile, ...]], None] | None = None


def _user(description: str, from_path: Callable, read: Callable, task: str | None = "classification",
          check: Callable | None = None) -> Source:  # fmt: skip
    return Source(description, (), _nowhere, read, task, from_path, check)


def _keras(description: str, files: tuple[RawFile, ...], read: Callable, task: str = "classification") -> Source:
    return Source(description, files, lambda: KERAS_URLS, read, task)


SOURCES: dict[str, Source] = {
    "digits": Source(
        "scikit-learn handwritten digits: 1,797 8x8 greyscale images shipped inside scikit-learn",
        DIGITS_FILES,
        sklearn_data_dir,
        read_digits,
    ),
    "mnist": Source(
        "MNIST: 60,000 + 10,000 28x28 greyscale handwritten digits", MNIST_FILES, lambda: MNIST_URLS, read_mnist
    ),
    "fashion_mnist": Source(
        "Fashion-MNIST: 60,000 + 10,000 28x28 greyscale clothing images",
        FASHION_FILES,
        lambda: FASHION_URLS,
        read_fashion_mnist,
    ),
    "cifar10": Source(
        "CIFAR-10: 50,000 + 10,000 32x32 colour images in 10 classes (official python batches)",
        (CIFAR10_FILE,),
        lambda: CIFAR10_URLS,
        read_cifar10,
    ),
    IMAGEFOLDER: _user("image folder", fetch_imagefolder, read_imagefolder, check=check_imagefolder),
    "imdb": _keras(
        "IMDB: 25,000 + 25,000 movie reviews, negative or positive (Keras's imdb.npz)", IMDB_FILES, read_imdb
    ),
    "reuters": _keras(
        "Reuters: 8,982 + 2,246 newswires in 46 topics (Keras's reuters.npz and its split)", REUTERS_FILES, read_reuters
    ),
    "boston_housing": _keras(
        "Boston housing: 404 + 102 districts, 13 features, median home value (Keras's split)",
        BOSTON_FILES,
        read_boston_housing,
        "regression",
    ),
    "diabetes": Source(
        "scikit-learn diabetes: 442 patients, 10 baseline measurements, disease progression a year on",
        DIABETES_FILES,
        sklearn_data_dir,
        read_diabetes,
        "regression",
    ),
    TABLE: _user("CSV table", fetch_table, read_table, task=None),
    TEXTFOLDER: _user("text folder", fetch_textfolder, read_textfolder),
}
DATASETS = tuple(SOURCES)


def check_name(name: str) -> None:
    if name not in DATASETS:
        raise DataError(f"data.name={name!r} is unknown: choose one of {', '.join(DATASETS)}")


def check_task(name: str, cfg: Any) -> None:
    """data.task may only restate what a dataset's targets are (a table's alone it chooses)."""
    own = SOURCES[name].task
    if own is not None and cfg.task not in (None, own):
        raise DataError(f"data={name} is a {own} dataset: data.task={cfg.task} does not apply; set data.task={own}")


def fetch(name: str, cfg: Any, dest: Path) -> dict[str, Any]:
    """Bring a dataset's raw files into `dest`, each verified; return the manifest."""
    check_name(name)
    check_task(name, cfg)
    source = SOURCES[name]
    if source.from_path is not None:
        if not cfg.path:
            raise DataError(f"data={name} needs data.path: the {source.description} to read (-S data.path=...)")
        origin = source.from_path(cfg.path, dest, cfg)
        (source.check or source.read)(dest, cfg, source.files)  # read everything now: bad data never reaches data/raw
        files = {p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in dest.iterdir()}
        return {"dataset": name, "description": f"{source.description} {origin}", "files": files}
    sources = ((cfg.mirror,) if cfg.mirror else ()) + source.urls()
    files, limits = {}, Limits.of(cfg.archive)
    for spec in source.files:
        origin, files[spec.name] = fetch_first(
            spec.name, sources, dest / spec.name, lambda p, s=spec: verify_file(p, s, limits), cfg.download
        )
        log.info("download: %s verified (from %s)", spec.name, masked(origin))
    return {"dataset": name, "description": source.description, "files": files}


def download(cfg: Any, out_dir: Path) -> dict[str, Any]:
    """Fetch dataset `cfg.name` into `out_dir` with its manifest: replaced whole, and only once
    every file verified."""
    with atomic_dir(out_dir) as tmp:
        manifest = fetch(cfg.name, cfg, tmp)
        write_json(tmp / "manifest.json", manifest)
    return manifest


def read(name: str, raw_dir: Path, cfg: Any) -> RawData:
    check_name(name)
    check_task(name, cfg)
    source = SOURCES[name]
    return source.read(raw_dir, cfg, source.files)
