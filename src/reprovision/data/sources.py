"""The dataset registry: where each dataset's raw files come from, how to check and read them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprovision.data.archives import Limits
from reprovision.data.cifar import CIFAR10_CLASSES, CIFAR10_FILE, CIFAR10_URLS, read_cifar10
from reprovision.data.digits import DIGITS_FILES, read_digits, sklearn_data_dir
from reprovision.data.fetch import fetch_first
from reprovision.data.idx import FASHION_FILES, FASHION_URLS, MNIST_FILES, MNIST_URLS, read_fashion_mnist, read_mnist
from reprovision.data.imagefolder import decode_image, fetch_imagefolder, read_imagefolder
from reprovision.data.raw import RawData, RawFile
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
    "RawData",
    "RawFile",
    "Source",
    "check_manifest",
    "check_name",
    "decode_image",
    "download",
    "fetch",
    "read",
]

log = logging.getLogger("reprovision.download")


@dataclass(frozen=True)
class Source:
    description: str
    files: tuple[RawFile, ...]
    urls: Callable[[], tuple[str, ...]]  # official locations (torchvision's), after data.mirror
    # read(raw_dir, cfg, files): `files` is this Source's own, so a replaced spec is the one read.
    read: Callable[[Path, Any, tuple[RawFile, ...]], RawData]


SOURCES: dict[str, Source] = {
    "digits": Source(
        "scikit-learn handwritten digits: 1,797 8x8 greyscale images shipped inside scikit-learn",
        DIGITS_FILES,
        sklearn_data_dir,
        read_digits,
    ),
    "mnist": Source(
        "MNIST: 60,000 + 10,000 28x28 greyscale handwritten digits",
        MNIST_FILES,
        lambda: MNIST_URLS,
        read_mnist,
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
}
IMAGEFOLDER = "imagefolder"
DATASETS = (*SOURCES, IMAGEFOLDER)


def check_name(name: str) -> None:
    if name not in DATASETS:
        raise DataError(f"data.name={name!r} is unknown: choose one of {', '.join(DATASETS)}")


def fetch(name: str, cfg: Any, dest: Path) -> dict[str, Any]:
    """Bring a dataset's raw files into `dest`, each verified; return the manifest."""
    check_name(name)
    if name == IMAGEFOLDER:
        if not cfg.path:
            raise DataError("data=imagefolder needs data.path: a directory or archive of train/<class>/ images")
        origin = fetch_imagefolder(cfg.path, dest, Limits.of(cfg.archive))
        read_imagefolder(dest, cfg)  # decode everything now: bad images never reach data/raw
        files = {p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in dest.iterdir()}
        return {"dataset": name, "description": f"image folder {origin}", "files": files}
    source = SOURCES[name]
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
    if name == IMAGEFOLDER:
        return read_imagefolder(raw_dir, cfg)
    source = SOURCES[name]
    return source.read(raw_dir, cfg, source.files)
