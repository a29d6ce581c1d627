"""imagefolder: the user's own train/<class>/* and test/<class>/* images, in a directory or an archive."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from reprovision.data.archives import Limits
from reprovision.data.folders import Found, archive_in, check_classes, collect, fetch_folder
from reprovision.data.raw import RawData, RawFile
from reprovision.errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
MAX_IMAGE_PIXELS = 50_000_000  # one image: a 50-megapixel photo (data.archive.max_image_mpixels; predict)
DECODE_BATCH = (256, 2**25)  # image files the split stage decodes at a time: at most this many and bytes
DECODE_WORKERS = 8  # processes decoding them, at most (one per core up to this)


def fetch_imagefolder(path: str, dest: Path, cfg: Any) -> str:
    """Keep the user's images as one file in data/raw: an archive as given, a directory packed."""
    return fetch_folder(path, dest, Limits.of(cfg.archive), "images.tar")


def decode_image(
    data: bytes, where: str, channels: int, size: int | None, max_pixels: int = MAX_IMAGE_PIXELS
) -> np.ndarray:
    """Any image file PIL reads, as uint8 (C, H, W): converted to `channels`, resized to `size`.
    An image of over `max_pixels` is refused from its header, before any pixel is decoded."""
    return decode_checked(data, where, channels, size, lambda w, h: _check_pixels(w, h, where, max_pixels))


def _check_pixels(width: int, height: int, where: str, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise DataError(
            f"{where} is {width:,}x{height:,} pixels, over the {max_pixels / 1e6:g} megapixels one image may have "
            "(data.archive.max_image_mpixels); shrink or remove it"
        )


@contextlib.contextmanager
def _pil_limit(pixels: int | None) -> Iterator[None]:
    """PIL's own pixel limit for a block (None: off), so a limit raised in the config is the limit."""
    from PIL import Image

    before, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, pixels
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


def decode_checked(
    data: bytes, where: str, channels: int, size: int | None, check: Callable[[int, int], None]
) -> np.ndarray:
    """decode_image, with `check(width, height)` run on the header before decoding."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings(), _pil_limit(None):  # `check` is the limit, from the header
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                check(*img.size)
                img = img.convert("L" if channels == 1 else "RGB")
                if size is not None and img.size != (size, size):
                    img = img.resize((size, size), Image.Resampling.BILINEAR)
                arr = np.asarray(img, dtype=np.uint8)
    except DataError:  # the pixel limits' own line
        raise
    except UnidentifiedImageError:  # PIL's message names its in-memory buffer, not the file
        raise DataError(f"{where} is not a readable image (no format PIL knows); remove or replace it") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{where} is not a readable image ({e}); remove or replace it") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def read_imagefolder(raw_dir: Path, cfg: Any, files: tuple[RawFile, ...] = ()) -> RawData:
    per_image, in_all = cfg.archive.max_image_mpixels * 1e6, cfg.archive.max_total_mpixels * 1e6
    seen = [0]  # pixels of every image so far, as their headers declare them

    def check(width: int, height: int, where: str) -> None:
        _check_pixels(width, height, where, per_image)
        seen[0] += width * height
        if seen[0] > in_all:
            raise DataError(
                f"{where}: the images so far hold {seen[0] / 1e6:,.0f} megapixels, over the "
                f"{in_all / 1e6:,.0f} the dataset may (data.archive.max_total_mpixels); raise it or use fewer images"
            )

    def decode(data: bytes, where: str) -> np.ndarray:
        where = f"imagefolder: {where}"
        return decode_checked(data, where, cfg.channels, cfg.image_size, lambda w, h: check(w, h, where))

    found = collect(archive_in(raw_dir), Limits.of(cfg.archive), IMAGE_SUFFIXES, decode, "decoding images")
    classes, has_test = check_classes(found, "imagefolder", "images")
    x_train, y_train = _stack(found, "train", classes)
    x_test, y_test = _stack(found, "test", classes) if has_test else (None, None)
    if x_test is not None and x_test.shape[1:] != x_train.shape[1:]:
        raise DataError(
            f"imagefolder: test images are {x_test.shape[2:]}, train images {x_train.shape[2:]}; "
            "set data.image_size to resize them all"
        )
    return RawData(x_train, y_train, x_test, y_test, classes)


def _stack(found: Found[np.ndarray], split: str, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    imgs = [img for cls in classes for img in found[split][cls]]
    shapes = sorted({img.shape for img in imgs})
    if len(shapes) > 1:
        raise DataError(
            f"imagefolder: images of mixed sizes {shapes[0][1:]} and {shapes[-1][1:]}; "
            "set data.image_size to resize them all"
        )
    labels = [i for i, cls in enumerate(classes) for _ in found[split][cls]]
    return np.stack(imgs), np.asarray(labels, dtype=np.int64)


def scan_imagefolder(raw_dir: Path, cfg: Any) -> tuple[list[str], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The classes, and per split (train, and test if there is one) each image's number in the
    archive (images counted in stored order) and its label, class by class: the order
    `read_imagefolder` stacks them in. Nothing is decoded."""
    numbers = itertools.count()
    found = collect(archive_in(raw_dir), Limits.of(cfg.archive), IMAGE_SUFFIXES, lambda *_: next(numbers), "listing")
    classes, has_test = check_classes(found, "imagefolder", "images")
    listed = {}
    for split in ("train", "test") if has_test else ("train",):
        images = [n for cls in classes for n in found[split][cls]]
        labels = [i for i, cls in enumerate(classes) for _ in found[split][cls]]
        listed[split] = (np.asarray(images, dtype=np.int64), np.asarray(labels, dtype=np.int64))
    return classes, listed


def check_imagefolder(raw_dir: Path, cfg: Any, files: tuple[RawFile, ...] = ()) -> None:
    """Every image decoded once, a batch at a time, and dropped: the layout, each file, the pixel
    limits and one image size are checked at download without holding the images."""
    _, listed = scan_imagefolder(raw_dir, cfg)
    count = 1 + max(int(numbers.max(initial=-1)) for numbers, _ in listed.values())
    decode_streamed(raw_dir, cfg, np.ones(count, dtype=bool), lambda number, image: None)


def decode_streamed(raw_dir: Path, cfg: Any, wanted: np.ndarray, sink: Callable[[int, np.ndarray], None]) -> tuple:
    """Decode the images whose archive numbers `wanted` marks, a `DECODE_BATCH` of files at a time
    on every core, and hand each to `sink(number, image)`; the image shape (C, H, W). Memory
    holds one batch of files and images, never the dataset."""
    import multiprocessing

    budget = [0, cfg.archive.max_total_mpixels * 1e6]  # pixels so far, the limit
    shape: list[tuple] = []
    batch: list[tuple] = []
    batch_bytes, numbers = [0], itertools.count()
    workers = min(len(os.sched_getaffinity(0)), DECODE_WORKERS)
    pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None

    def flush() -> None:
        jobs = [(data, f"imagefolder: {where}", cfg.channels, cfg.image_size, cfg.archive.max_image_mpixels * 1e6)
                for _, data, where in batch]  # fmt: skip
        for (number, _, where), (image, pixels) in zip(batch, (pool.map if pool else map)(_decode, jobs), strict=True):
            budget[0] += pixels
            if budget[0] > budget[1]:
                raise DataError(
                    f"imagefolder: {where}: the images so far hold {budget[0] / 1e6:,.0f} megapixels, over the "
                    f"{budget[1] / 1e6:,.0f} the dataset may (data.archive.max_total_mpixels); "
                    "raise it or use fewer images"
                )
            if not shape:
                shape.append(image.shape)
            if image.shape != shape[0]:
                raise DataError(
                    f"imagefolder: images of mixed sizes {shape[0][1:]} and {image.shape[1:]} ({where}); "
                    "set data.image_size to resize them all"
                )
            sink(number, image)
        batch.clear()
        batch_bytes[0] = 0

    def take(data: bytes, where: str) -> None:
        number = next(numbers)  # as scan_imagefolder numbers them: every image file, in stored order
        if wanted[number]:
            batch.append((number, data, where))
            batch_bytes[0] += len(data)
            if len(batch) >= DECODE_BATCH[0] or batch_bytes[0] >= DECODE_BATCH[1]:
                flush()

    try:
        collect(archive_in(raw_dir), Limits.of(cfg.archive), IMAGE_SUFFIXES, take, "decoding images")
        flush()
    finally:
        if pool:
            pool.terminate()
    return shape[0]


def _decode(job: tuple) -> tuple[np.ndarray, int]:
    """One image in a worker process: the image and its pixels as its header declares them."""
    data, where, channels, size, max_pixels = job
    pixels = []

    def check(width: int, height: int) -> None:
        _check_pixels(width, height, where, max_pixels)
        pixels.append(width * height)

    return decode_checked(data, where, channels, size, check), pixels[0]
