"""MNIST and Fashion-MNIST: IDX files, their published checksums, class names and locations."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from reprovision.data.raw import RawData, RawFile
from reprovision.errors import DataError

MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
FASHION_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
MNIST_CLASSES = [str(d) for d in range(10)]
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


def _idx_reader(classes: list[str]) -> Callable[..., RawData]:
    def read(raw_dir: Path, cfg: Any = None, files: tuple[RawFile, ...] = ()) -> RawData:
        def load(name: str) -> np.ndarray:
            with gzip.open(raw_dir / name, "rb") as f:
                return parse_idx(f.read(), name)

        x_train, y_train = load("train-images-idx3-ubyte.gz"), load("train-labels-idx1-ubyte.gz")
        x_test, y_test = load("t10k-images-idx3-ubyte.gz"), load("t10k-labels-idx1-ubyte.gz")
        return RawData(x_train[:, None], y_train.astype(np.int64), x_test[:, None], y_test.astype(np.int64), classes)

    return read


# md5 of the decompressed files, as published; a re-compressed mirror passes.
MNIST_FILES = (
    RawFile("train-images-idx3-ubyte.gz", content_md5="6bbc9ace898e44ae57da46a324031adb"),
    RawFile("train-labels-idx1-ubyte.gz", content_md5="a25bea736e30d166cdddb491f175f624"),
    RawFile("t10k-images-idx3-ubyte.gz", content_md5="2646ac647ad5339dbf082846283269ea"),
    RawFile("t10k-labels-idx1-ubyte.gz", content_md5="27ae3e4e09519cfbb04c329615203637"),
)
# Fashion-MNIST's own README publishes the .gz files' md5; the decompressed files' md5 are
# published by loaders that check the raw files (torchvision's and others'): a mirror passes with
# either the original .gz files or a re-compressed copy of the same content.
FASHION_FILES = (
    RawFile(
        "train-images-idx3-ubyte.gz",
        content_md5="f4a8712d7a061bf5bd6d2ca38dc4d50a",
        file_md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    ),
    RawFile(
        "train-labels-idx1-ubyte.gz",
        content_md5="9018921c3c673c538a1fc5bad174d6f9",
        file_md5="25c81989df183df01b3e8a0aad5dffbe",
    ),
    RawFile(
        "t10k-images-idx3-ubyte.gz",
        content_md5="8181f5470baa50b63fa0f6fddb340f0a",
        file_md5="bef4ecab320f06d8554ea6380940ec79",
    ),
    RawFile(
        "t10k-labels-idx1-ubyte.gz",
        content_md5="15d484375f8d13e6eb1aabb0c3f46965",
        file_md5="bb300cfdad3c16e7a12a480ee83cd310",
    ),
)
read_mnist = _idx_reader(MNIST_CLASSES)
read_fashion_mnist = _idx_reader(FASHION_CLASSES)
