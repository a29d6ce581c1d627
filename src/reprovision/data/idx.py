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


def _idx_files(md5s: dict[str, str], published: bool) -> tuple[RawFile, ...]:
    key = "file_md5" if published else "content_md5"
    return tuple(RawFile(name, **{key: md5}) for name, md5 in md5s.items())


# md5 of the decompressed files, as published; a re-compressed mirror passes.
MNIST_FILES = _idx_files(
    {
        "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
    },
    published=False,
)
# Only the .gz files' md5 are published: a re-compressed mirror is refused.
FASHION_FILES = _idx_files(
    {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    published=True,
)
read_mnist = _idx_reader(MNIST_CLASSES)
read_fashion_mnist = _idx_reader(FASHION_CLASSES)
