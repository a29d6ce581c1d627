"""Keras's imdb, reuters and boston_housing: its .npz files, checked against the checksums Keras
publishes, then read, shuffled and split exactly as keras.datasets does (users compare against it).

Unlike Keras, no num_words or maxlen is applied here: the normalise stage fits the vocabulary on
the training split."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from reprovision.data.archives import Limits, iter_members
from reprovision.data.documents import pad_documents
from reprovision.data.pickles import unpickle_arrays
from reprovision.data.raw import FIRST_WORD, RESERVED_WORDS, RawData, RawFile
from reprovision.data.verify import verify_file
from reprovision.errors import DataError
from reprovision.files import read_npy_header

KERAS_URLS = ("https://storage.googleapis.com/tensorflow/tf-keras-datasets/",)
SEED, TEST_SPLIT = 113, 0.2  # keras.datasets' defaults: the split users compare against
INDEX_FROM = FIRST_WORD - 1  # Keras's index_from=3: the word of rank r (1: the most frequent) is id r + 3
UNUSED = RESERVED_WORDS[INDEX_FROM]  # the word of an id no word has

# What keras/src/datasets/{imdb,reuters,boston_housing}.py pass to get_file as file_hash: sha256
# for the .npz files, md5 for the word indexes (a .json: its md5 is its content's md5).
IMDB_FILES = (
    RawFile("imdb.npz", file_sha256="69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"),
    RawFile("imdb_word_index.json", content_md5="bfafd718b763782e994055a2d397834f"),
)
REUTERS_FILES = (
    RawFile("reuters.npz", file_sha256="d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916"),
    RawFile("reuters_word_index.json", content_md5="4d44cc38712099c9e383dc6e5f11a921"),
)
BOSTON_FILES = (
    RawFile("boston_housing.npz", file_sha256="f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5"),
)
IMDB_CLASSES = ["negative", "positive"]
# keras.datasets.reuters.get_label_names(), in label order.
# fmt: off
REUTERS_TOPICS = [
    "cocoa", "grain", "veg-oil", "earn", "acq", "wheat", "copper", "housing", "money-supply", "coffee",
    "sugar", "trade", "reserves", "ship", "cotton", "carcass", "crude", "nat-gas", "cpi", "money-fx",
    "interest", "gnp", "meal-feed", "alum", "oilseed", "gold", "tin", "strategic-metal", "livestock",
    "retail", "ipi", "iron-steel", "rubber", "heat", "jobs", "lei", "bop", "zinc", "orange", "pet-chem",
    "dlr", "gas", "silver", "wpi", "hog", "lead",
]
# fmt: on
BOSTON_FEATURES = ["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT"]


def _verify(path: Path, spec: RawFile) -> None:
    """Before anything parses the file: it must be the published one (pickles inside, for the .npz)."""
    try:
        verify_file(path, spec)
    except DataError as e:
        raise DataError(f"{path.name}: {e}; refusing to read it (rerun the download stage)") from None


def load_npz(path: Path, spec: RawFile, cfg: Any) -> dict[str, np.ndarray]:
    """The arrays of a verified .npz (a zip of .npy files, read within data.archive's limits)."""
    _verify(path, spec)
    members = iter_members(path, Limits.of(cfg.archive))
    return {m.stem: _read_npy(data, f"{path.name}: {m}") for m, data in members if data and m.suffix == ".npy"}


def _read_npy(data: bytes, where: str) -> np.ndarray:
    """Numeric arrays with pickle off; object arrays (Keras's ragged lists of ids) through the
    array-only unpickler: np.load(allow_pickle=True) would run whatever a pickle names."""
    f = io.BytesIO(data)
    try:
        shape, _, dtype = read_npy_header(f)
        if not dtype.hasobject:
            f.seek(0)
            return np.lib.format.read_array(f, allow_pickle=False)
    except ValueError as e:
        raise DataError(f"{where}: not a readable .npy array ({e})") from None
    # Python 2 pickles (Keras's files are that old) hold str; latin1 is numpy's advice for them.
    array = unpickle_arrays(f, where, "Keras .npz", encoding="latin1")
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise DataError(f"{where}: the pickle does not hold the {shape} array its header declares")
    return array


def _shuffled(arrays: dict[str, np.ndarray], x: str, y: str, rng: np.random.RandomState, where: str) -> tuple:
    """Keras's shuffle: one permutation of np.arange(n) drawn from `rng`, applied to x and y."""
    if x not in arrays or y not in arrays or len(arrays[x]) != len(arrays[y]):
        raise DataError(f"{where}: needs arrays {x!r} and {y!r} of equal length; it holds {sorted(arrays)}")
    indices = np.arange(len(arrays[x]))
    rng.shuffle(indices)
    return arrays[x][indices], arrays[y][indices]


def _cut(n: int) -> int:
    return int(n * (1 - TEST_SPLIT))  # Keras's expression, float rounding included: reuters 8,982, boston 404


def _spec(files: tuple[RawFile, ...], suffix: str) -> RawFile:
    return next(f for f in files if f.name.endswith(suffix))


def read_imdb(raw_dir: Path, cfg: Any, files: tuple[RawFile, ...] = IMDB_FILES) -> RawData:
    npz = _spec(files, ".npz")
    arrays = load_npz(raw_dir / npz.name, npz, cfg)
    rng = np.random.RandomState(SEED)  # one generator: train is shuffled first, then test
    train = _shuffled(arrays, "x_train", "y_train", rng, npz.name)
    test = _shuffled(arrays, "x_test", "y_test", rng, npz.name)
    return _text(raw_dir, files, train, test, IMDB_CLASSES)


def read_reuters(raw_dir: Path, cfg: Any, files: tuple[RawFile, ...] = REUTERS_FILES) -> RawData:
    npz = _spec(files, ".npz")
    x, y = _shuffled(load_npz(raw_dir / npz.name, npz, cfg), "x", "y", np.random.RandomState(SEED), npz.name)
    cut = _cut(len(x))
    return _text(raw_dir, files, (x[:cut], y[:cut]), (x[cut:], y[cut:]), REUTERS_TOPICS)


def read_boston_housing(raw_dir: Path, cfg: Any, files: tuple[RawFile, ...] = BOSTON_FILES) -> RawData:
    npz = _spec(files, ".npz")
    x, y = _shuffled(load_npz(raw_dir / npz.name, npz, cfg), "x", "y", np.random.RandomState(SEED), npz.name)
    if x.shape[1:] != (len(BOSTON_FEATURES),) or y.ndim != 1:
        raise DataError(f"{npz.name}: x is {x.shape} and y {y.shape}, not (N, 13) and (N,)")
    x, y, cut = x.astype(np.float32), y.astype(np.float32), _cut(len(x))
    return RawData(x[:cut], y[:cut], x[cut:], y[cut:], [], "table", "regression", list(BOSTON_FEATURES), target="MEDV")


def _text(raw_dir: Path, files: tuple[RawFile, ...], train: tuple, test: tuple, classes: list[str]) -> RawData:
    """Keras's documents as rows: START, then each word's rank + INDEX_FROM (Keras's ids); labels checked."""
    index = _spec(files, "_word_index.json")
    name = index.name.removesuffix("_word_index.json")
    words = word_list(raw_dir / index.name, index)
    (docs_train, y_train), (docs_test, y_test) = train, test
    x_train, x_test = pad_documents(docs_train, docs_test, offset=INDEX_FROM, where=name)
    top = max(int(x_train.max(initial=0)), int(x_test.max(initial=0)))
    words += [UNUSED] * (top + 1 - len(words))
    y_train, y_test = np.asarray(y_train, dtype=np.int64), np.asarray(y_test, dtype=np.int64)
    for y in (y_train, y_test):
        if len(y) and (y.min() < 0 or y.max() >= len(classes)):
            raise DataError(f"{name}: labels run {y.min()}..{y.max()}, not 0..{len(classes) - 1} (the classes)")
    return RawData(x_train, y_train, x_test, y_test, list(classes), "text", "classification", words=words)


def word_list(path: Path, spec: RawFile) -> list[str]:
    """id -> word from a verified Keras word index (word -> rank, 1 the most frequent)."""
    _verify(path, spec)
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path.name}: not a JSON word index ({e})") from None
    if not isinstance(index, dict) or not all(type(r) is int and r >= 1 for r in index.values()):
        raise DataError(f"{path.name}: not a word index (an object of word: rank >= 1)")
    words = [*RESERVED_WORDS, *[UNUSED] * max(index.values(), default=0)]
    for word, rank in index.items():
        words[rank + INDEX_FROM] = word
    return words
