"""The dataset registry: where each dataset's raw files come from, how to check and read them."""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import io
import logging
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from tqdm import tqdm

from reprovision.data.archives import is_archive, iter_members, pack_directory
from reprovision.data.fetch import copy_file, fetch_first, masked
from reprovision.errors import DataError
from reprovision.files import file_digest, sha256_file

log = logging.getLogger("reprovision.download")


@dataclass(frozen=True)
class RawData:
    """A dataset as read from its raw files: uint8 images (N, C, H, W), int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None  # None: the dataset has no test split of its own
    y_test: np.ndarray | None
    classes: list[str]


@dataclass(frozen=True)
class RawFile:
    """A file to download and what its content must hash to (md5, the published references).

    Content, not bytes: a .gz is checked decompressed and an archive member by member, so a
    mirror that re-compresses the same data passes. `file_md5` (the published file itself) is
    the fallback where no content checksum is published.
    """

    name: str
    content_md5: str | None = None
    members: dict[str, str] = field(default_factory=dict)
    file_md5: str | None = None


@dataclass(frozen=True)
class Source:
    description: str
    files: tuple[RawFile, ...]
    urls: Callable[[], tuple[str, ...]]  # official locations (torchvision's), after data.mirror
    read: Callable[[Path, Any], RawData]


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _looks_like_html(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body"))


def content_md5(path: Path) -> str:
    """md5 of a file's content: decompressed if it is gzip."""
    h = hashlib.md5(usedforsecurity=False)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    except EOFError:
        raise DataError("truncated: the compressed data ends early") from None
    except gzip.BadGzipFile:
        raise DataError("not a gzip file") from None
    return h.hexdigest()


def verify_file(path: Path, spec: RawFile) -> dict[str, Any]:
    """Check a downloaded file against `spec`; return its manifest entry or raise DataError."""
    if _looks_like_html(path):
        raise DataError("the source sent an HTML page instead of the file")
    if spec.members:
        got = {str(p): _md5(data) for p, data in iter_members(path) if str(p) in spec.members and data is not None}
        bad = [m for m, md5 in spec.members.items() if got.get(m) != md5]
        ok = not bad
        detail = f"member {bad[0]} missing or changed" if bad else ""
    else:
        actual = content_md5(path)
        ok = actual == spec.content_md5
        detail = f"content md5 {actual} is not the known {spec.content_md5}"
    if not ok and spec.file_md5:
        ok = file_digest(path, "md5") == spec.file_md5
        detail += " nor is the file the published one"
    if not ok:
        raise DataError(f"checksum mismatch: {detail}")
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def check_manifest(raw_dir: Path, manifest: dict) -> None:
    """Refuse raw files that changed since the download stage verified them."""
    for name, entry in manifest["files"].items():
        path = raw_dir / name
        if not path.is_file() or sha256_file(path) != entry["sha256"]:
            raise DataError(
                f"{path}: differs from its download manifest; rerun the download stage (dvc repro -f download)"
            )


# --- digits: scikit-learn's 1,797 handwritten 8x8 digits, shipped inside scikit-learn ---------


def _sklearn_data_dir() -> tuple[str, ...]:
    return (str(importlib.resources.files("sklearn.datasets.data")),)


def read_digits(raw_dir: Path, cfg: Any = None) -> RawData:
    with gzip.open(raw_dir / "digits.csv.gz", "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    # 64 pixel values in 0..16, then the label; rescale pixels to the usual 0..255.
    pixels = np.rint(table[:, :64] * (255 / 16)).astype(np.uint8)
    return RawData(pixels.reshape(-1, 1, 8, 8), table[:, 64], None, None, [str(d) for d in range(10)])


# --- MNIST and Fashion-MNIST: IDX files ----------------------------------------------------


def parse_idx(data: bytes, name: str) -> np.ndarray:
    """An IDX array of unsigned bytes (the MNIST format): magic 0x0008, ndim, big-endian dims."""
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise DataError(f"{name}: not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(dims)):
        raise DataError(f"{name}: {len(data) - offset} bytes of data for shape {dims}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def _idx_reader(classes: list[str]) -> Callable[[Path, Any], RawData]:
    def read(raw_dir: Path, cfg: Any = None) -> RawData:
        def load(name: str) -> np.ndarray:
            with gzip.open(raw_dir / name, "rb") as f:
                return parse_idx(f.read(), name)

        x_train, y_train = load("train-images-idx3-ubyte.gz"), load("train-labels-idx1-ubyte.gz")
        x_test, y_test = load("t10k-images-idx3-ubyte.gz"), load("t10k-labels-idx1-ubyte.gz")
        return RawData(x_train[:, None], y_train.astype(np.int64), x_test[:, None], y_test.astype(np.int64), classes)

    return read


def _idx_files(md5s: dict[str, str], published: bool) -> tuple[RawFile, ...]:
    key = "file_md5" if published else "content_md5"
    return tuple(RawFile(name, **{key: md5}) for name, md5 in md5s.items())


# --- CIFAR-10: the official python batches (pickles, read only once their md5 matches) -----

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR10_MEMBERS = {
    "cifar-10-batches-py/data_batch_1": "c99cafc152244af753f735de768cd75f",
    "cifar-10-batches-py/data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "cifar-10-batches-py/data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "cifar-10-batches-py/data_batch_4": "634d18415352ddfa80567beed471001a",
    "cifar-10-batches-py/data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "cifar-10-batches-py/test_batch": "40351d587109b95175f43aff81a1287e",
    "cifar-10-batches-py/batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: anything else is refused."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise DataError(f"refusing to unpickle {module}.{name}: not part of the CIFAR format")
        return super().find_class(module.replace("numpy.core.", "numpy._core."), name)


def unpickle_verified(data: bytes, md5: str, name: str) -> Any:
    """Unpickle `data` only if it hashes to `md5`, and then only arrays and plain containers."""
    if _md5(data) != md5:
        raise DataError(f"{name}: md5 does not match the published one; refusing to unpickle it")
    return _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()


def read_cifar10(raw_dir: Path, cfg: Any = None) -> RawData:
    (spec,) = SOURCES["cifar10"].files
    members = {str(p): d for p, d in iter_members(raw_dir / spec.name) if str(p) in spec.members}
    missing = sorted(set(spec.members) - set(members))
    if missing:
        raise DataError(f"{spec.name}: {missing[0]} is missing; download it again")
    batches = {name: unpickle_verified(members[name], md5, name) for name, md5 in spec.members.items()}

    def arrays(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        x = np.concatenate([np.asarray(batches[n][b"data"], dtype=np.uint8) for n in names])
        y = np.concatenate([np.asarray(batches[n][b"labels"], dtype=np.int64) for n in names])
        return x.reshape(-1, 3, 32, 32), y  # rows are the red plane, then green, then blue

    classes = [c.decode() for c in batches["cifar-10-batches-py/batches.meta"][b"label_names"]]
    x_train, y_train = arrays([f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)])
    x_test, y_test = arrays(["cifar-10-batches-py/test_batch"])
    return RawData(x_train, y_train, x_test, y_test, classes)


# --- imagefolder: train/<class>/* and test/<class>/* in a directory or an archive ----------

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SPLIT_DIRS = ("train", "test")


def fetch_imagefolder(path: str, dest: Path) -> str:
    """Keep the user's images as one file in data/raw: an archive as given, a directory packed."""
    src = Path(path)
    if src.is_dir():
        pack_directory(src, dest / "images.tar")
    elif src.is_file() and is_archive(src):
        copy_file(src, dest / src.name)
    else:
        raise DataError(f"data.path={path!r}: not a directory or a .tar/.tar.gz/.zip archive")
    for _ in iter_members(_archive_in(dest)):  # refuse unsafe or truncated archives now, not at split
        pass
    return str(src.resolve())


def _archive_in(raw_dir: Path) -> Path:
    return next(p for p in sorted(raw_dir.iterdir()) if is_archive(p))


def decode_image(data: bytes, where: str, channels: int, size: int | None) -> np.ndarray:
    """Any image file PIL reads, as uint8 (C, H, W): converted to `channels`, resized to `size`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{where} is not a readable image ({e}); remove or replace it") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def read_imagefolder(raw_dir: Path, cfg: Any) -> RawData:
    archive = _archive_in(raw_dir)
    found: dict[str, dict[str, list[np.ndarray]]] = {s: {} for s in SPLIT_DIRS}
    bar = tqdm(desc="decoding images", unit=" img", disable=None if sys.stderr.isatty() else True, leave=False)
    with bar:
        for path, data in iter_members(archive):
            parts = _strip_root(path)
            if parts is None or len(parts) < 2:
                continue
            split, cls = parts[0], parts[1]
            found[split].setdefault(cls, [])
            if data is None or len(parts) != 3 or PurePosixPath(parts[2]).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            found[split][cls].append(
                decode_image(data, "imagefolder: " + "/".join(parts), cfg.channels, cfg.image_size)
            )
            bar.update()

    classes = sorted(found["train"])
    if not classes:
        raise DataError("imagefolder: no train/<class>/ folders found; the layout is train/<class>/<image>")
    for split in SPLIT_DIRS:
        for cls, imgs in found[split].items():
            if not imgs:
                raise DataError(f"imagefolder: class {cls!r} in {split}/ has no images; add images or remove it")
    has_test = bool(found["test"])
    if has_test and set(found["test"]) != set(classes):
        diff = sorted(set(found["test"]) ^ set(classes))[0]
        where = "train/" if diff not in found["train"] else "test/"
        raise DataError(f"imagefolder: class {diff!r} is missing from {where}; train/ and test/ need the same classes")

    def stack(split: str) -> tuple[np.ndarray, np.ndarray]:
        imgs = [img for cls in classes for img in found[split][cls]]
        shapes = sorted({img.shape for img in imgs})
        if len(shapes) > 1:
            raise DataError(
                f"imagefolder: images of mixed sizes {shapes[0][1:]} and {shapes[-1][1:]}; "
                "set data.image_size to resize them all"
            )
        labels = [i for i, cls in enumerate(classes) for _ in found[split][cls]]
        return np.stack(imgs), np.asarray(labels, dtype=np.int64)

    x_train, y_train = stack("train")
    x_test, y_test = stack("test") if has_test else (None, None)
    if x_test is not None and x_test.shape[1:] != x_train.shape[1:]:
        raise DataError(
            f"imagefolder: test images are {x_test.shape[2:]}, train images {x_train.shape[2:]}; "
            "set data.image_size to resize them all"
        )
    return RawData(x_train, y_train, x_test, y_test, classes)


def _strip_root(path: PurePosixPath) -> tuple[str, ...] | None:
    """Parts from train/ or test/ on, allowing one enclosing folder (images/train/...)."""
    parts = path.parts
    for start in (0, 1):
        if len(parts) > start and parts[start] in SPLIT_DIRS:
            return parts[start:]
    return None


# --- the registry ------------------------------------------------------------------------

MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
FASHION_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

SOURCES: dict[str, Source] = {
    "digits": Source(
        "scikit-learn handwritten digits: 1,797 8x8 greyscale images shipped inside scikit-learn",
        (RawFile("digits.csv.gz", content_md5="a0339c30a8a5312a1b6f9e5c719dcce5"),),
        _sklearn_data_dir,
        read_digits,
    ),
    "mnist": Source(
        "MNIST: 60,000 + 10,000 28x28 greyscale handwritten digits",
        # md5 of the decompressed files, as published; a re-compressed mirror passes.
        _idx_files(
            {
                "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
                "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
                "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
                "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
            },
            published=False,
        ),
        lambda: MNIST_URLS,
        _idx_reader([str(d) for d in range(10)]),
    ),
    "fashion_mnist": Source(
        "Fashion-MNIST: 60,000 + 10,000 28x28 greyscale clothing images",
        # Only the .gz files' md5 are published: a re-compressed mirror is refused.
        _idx_files(
            {
                "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
            },
            published=True,
        ),
        lambda: FASHION_URLS,
        _idx_reader(FASHION_CLASSES),
    ),
    "cifar10": Source(
        "CIFAR-10: 50,000 + 10,000 32x32 colour images in 10 classes (official python batches)",
        (RawFile("cifar-10-python.tar.gz", members=CIFAR10_MEMBERS, file_md5="c58f30108f718f92721af3b95e74349a"),),
        lambda: ("https://www.cs.toronto.edu/~kriz/",),
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
        origin = fetch_imagefolder(cfg.path, dest)
        read_imagefolder(dest, cfg)  # decode everything now: bad images never reach data/raw
        files = {p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in dest.iterdir()}
        return {"dataset": name, "description": f"image folder {origin}", "files": files}
    source = SOURCES[name]
    sources = ((cfg.mirror,) if cfg.mirror else ()) + source.urls()
    files = {}
    for spec in source.files:
        origin, files[spec.name] = fetch_first(
            spec.name, sources, dest / spec.name, lambda p, s=spec: verify_file(p, s)
        )
        log.info("download: %s verified (from %s)", spec.name, masked(origin))
    return {"dataset": name, "description": source.description, "files": files}


def read(name: str, raw_dir: Path, cfg: Any) -> RawData:
    check_name(name)
    return read_imagefolder(raw_dir, cfg) if name == IMAGEFOLDER else SOURCES[name].read(raw_dir, cfg)
