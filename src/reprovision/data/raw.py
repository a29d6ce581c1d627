"""The types the dataset registry and its per-format readers share: raw files and what they read to."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KINDS = ("image", "table", "text")
TASKS = ("classification", "regression")

# Token ids of text data, Keras's convention (its imdb/reuters loaders: start_char=1, oov_char=2,
# index_from=3): 0 pads a row, 1 starts every document, 2 stands for a word out of the vocabulary,
# 3 is never used, words are 4 and up.
PAD, START, UNKNOWN = 0, 1, 2
RESERVED_WORDS = ("<pad>", "<start>", "<unk>", "<unused>")
FIRST_WORD = len(RESERVED_WORDS)


@dataclass(frozen=True)
class RawData:
    """A dataset as read from its raw files.

    `kind` says what a row is: `image` uint8 (N, C, H, W); `table` float32 (N, F), the columns named
    by `features`; `text` int32 token ids (N, L), each row START then its words, padded with PAD
    to the longest document, `words[id]` the word of an id (its first FIRST_WORD are RESERVED_WORDS).
    `task` says what a target is: `classification` int64 indices into `classes`; `regression`
    float32 values of the column named `target` (and `classes` is empty).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None  # None: the dataset has no test split of its own
    y_test: np.ndarray | None
    classes: list[str]
    kind: str = "image"
    task: str = "classification"
    features: list[str] = field(default_factory=list)  # table: the feature columns, in order
    words: list[str] = field(default_factory=list)  # text: id -> word
    target: str = ""  # what is predicted: the target column's name (tables), else empty


@dataclass(frozen=True)
class RawFile:
    """A file to download and what its content must hash to (md5, the published references).

    Content, not bytes: a .gz is checked decompressed and an archive member by member, so a
    mirror that re-compresses the same data passes. `file_md5` (the published file itself) is
    the fallback where no content checksum is published; `file_sha256` is checked instead where
    that is what is published (Keras's datasets).
    """

    name: str
    content_md5: str | None = None
    members: dict[str, str] = field(default_factory=dict)
    file_md5: str | None = None
    file_sha256: str | None = None
