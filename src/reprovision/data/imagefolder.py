"""imagefolder: the user's own train/<class>/* and test/<class>/* images, in a directory or an archive."""

from __future__ import annotations

import io
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from tqdm import tqdm

from reprovision.data.archives import Limits, is_archive, iter_members, pack_directory
from reprovision.data.fetch import copy_file
from reprovision.data.raw import RawData
from reprovision.errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SPLIT_DIRS = ("train", "test")

# split -> class -> decoded images, in archive order
Found = dict[str, dict[str, list[np.ndarray]]]


def fetch_imagefolder(path: str, dest: Path, limits: Limits) -> str:
    """Keep the user's images as one file in data/raw: an archive as given, a directory packed."""
    src = Path(path)
    if src.is_dir():
        pack_directory(src, dest / "images.tar", limits)
    elif src.is_file() and is_archive(src):
        copy_file(src, dest / src.name)
    else:
        raise DataError(f"data.path={path!r}: not a directory or a .tar/.tar.gz/.zip archive")
    for _ in iter_members(_archive_in(dest), limits):  # refuse unsafe or truncated archives now, not at split
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
    except Image.DecompressionBombError as e:  # PIL's own pixel limit, checked before decoding
        raise DataError(f"{where} is too large to decode ({e}); refusing it: remove or shrink it") from None
    except UnidentifiedImageError:  # PIL's message names its in-memory buffer, not the file
        raise DataError(f"{where} is not a readable image (no format PIL knows); remove or replace it") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{where} is not a readable image ({e}); remove or replace it") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def read_imagefolder(raw_dir: Path, cfg: Any) -> RawData:
    found = _decode_all(_archive_in(raw_dir), cfg)
    classes, has_test = _check_classes(found)
    x_train, y_train = _stack(found, "train", classes)
    x_test, y_test = _stack(found, "test", classes) if has_test else (None, None)
    if x_test is not None and x_test.shape[1:] != x_train.shape[1:]:
        raise DataError(
            f"imagefolder: test images are {x_test.shape[2:]}, train images {x_train.shape[2:]}; "
            "set data.image_size to resize them all"
        )
    return RawData(x_train, y_train, x_test, y_test, classes)


def _decode_all(archive: Path, cfg: Any) -> Found:
    """Every image under train/<class>/ and test/<class>/, decoded; each class folder seen, even empty."""
    found: Found = {s: {} for s in SPLIT_DIRS}
    bar = tqdm(desc="decoding images", unit=" img", disable=None if sys.stderr.isatty() else True, leave=False)
    with bar:
        for path, data in iter_members(archive, Limits.of(cfg.archive)):
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
    return found


def _check_classes(found: Found) -> tuple[list[str], bool]:
    """The classes (sorted train/ folders) and whether there is a test/ split; refuse a bad layout."""
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
    return classes, has_test


def _stack(found: Found, split: str, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    imgs = [img for cls in classes for img in found[split][cls]]
    shapes = sorted({img.shape for img in imgs})
    if len(shapes) > 1:
        raise DataError(
            f"imagefolder: images of mixed sizes {shapes[0][1:]} and {shapes[-1][1:]}; "
            "set data.image_size to resize them all"
        )
    labels = [i for i, cls in enumerate(classes) for _ in found[split][cls]]
    return np.stack(imgs), np.asarray(labels, dtype=np.int64)


def _strip_root(path: PurePosixPath) -> tuple[str, ...] | None:
    """Parts from train/ or test/ on, allowing one enclosing folder (images/train/...)."""
    parts = path.parts
    for start in (0, 1):
        if len(parts) > start and parts[start] in SPLIT_DIRS:
            return parts[start:]
    return None
