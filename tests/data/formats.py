"""Small files in the datasets' official formats, and the config helpers the dataset tests share."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import pickle
import random
import tarfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from reprovision.config import DataConfig, compose, validate
from reprovision.data import sources

ROOT = Path(__file__).resolve().parents[2]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def data_config(*overrides: str) -> DataConfig:
    return validate(compose(ROOT / "conf", list(overrides))).data


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def gz(data: bytes, level: int = 9) -> bytes:
    return gzip.compress(data, compresslevel=level, mtime=0)


def mnist_like(n_train: int = 30, n_test: int = 10, seed: int = 0) -> dict[str, bytes]:
    """The four MNIST file names holding small random data, decompressed."""
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte.gz": idx_bytes(rng.integers(0, 256, (n_train, 28, 28))),
        "train-labels-idx1-ubyte.gz": idx_bytes(np.arange(n_train) % 10),
        "t10k-images-idx3-ubyte.gz": idx_bytes(rng.integers(0, 256, (n_test, 28, 28))),
        "t10k-labels-idx1-ubyte.gz": idx_bytes(np.arange(n_test) % 10),
    }


def cifar_batch(x: np.ndarray, y: np.ndarray) -> bytes:
    """One CIFAR-10 python batch: a pickled dict, rows = red plane, green plane, blue plane."""
    rows = x.transpose(0, 3, 1, 2).reshape(len(x), 3072)  # (N, H, W, C) -> planes
    return pickle.dumps(
        {
            b"batch_label": b"fixture",
            b"labels": [int(v) for v in y],
            b"data": rows,
            b"filenames": [b"%d.png" % i for i in range(len(y))],
        },
        protocol=4,
    )


def tar_gz(members: dict[str, bytes], level: int = 9) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=level) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def use_fixture_checksums(monkeypatch, name: str, **files) -> None:
    """Point a dataset's known checksums at fixture files (their real values are for real data)."""
    src = sources.SOURCES[name]
    new = tuple(dataclasses.replace(f, **files[f.name]) if f.name in files else f for f in src.files)
    monkeypatch.setitem(sources.SOURCES, name, dataclasses.replace(src, files=new))


def ragged(docs: list[list[int]]) -> np.ndarray:
    """Documents as Keras's imdb/reuters .npz hold them: an object array of Python lists of ints."""
    array = np.empty(len(docs), dtype=object)
    array[:] = [list(d) for d in docs]
    return array


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """An .npz as np.savez writes it (object arrays pickled, as Keras's files hold them)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def photo(seed: int, size: int) -> bytes:
    """A smooth picture (small as a PNG, `size` x `size` pixels decoded)."""
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    rgb = np.stack([np.add.outer(ramp, ramp * (seed % 7) / 7) % 256 for _ in range(3)], axis=-1)
    rgb[..., seed % 3] = seed % 256
    buf = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def photo_archive(path: Path, layout: dict[str, dict[str, int]], size: int = 12, seed: int = 0) -> Path:
    """A tar of train/<class>/ (and test/<class>/) PNGs, members in a shuffled order: classes
    interleaved, as any archiver may store them."""
    members = [(f"{s}/{c}/{i}.png", photo(zlib.crc32(f"{s}{c}{i}".encode()) % 1000, size)) for s, cs in layout.items()
               for c, n in cs.items() for i in range(n)]  # fmt: skip
    random.Random(seed).shuffle(members)
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path
