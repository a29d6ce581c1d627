"""textfolder: the user's own train/<class>/*.txt and test/<class>/*.txt, in a directory or an archive."""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from reprovision.data.archives import Limits
from reprovision.data.documents import MAX_DOCUMENT_WORDS, pad_documents
from reprovision.data.folders import Found, archive_in, check_classes, collect, fetch_folder
from reprovision.data.raw import FIRST_WORD, RESERVED_WORDS, RawData, RawFile
from reprovision.data.text import tokens
from reprovision.errors import DataError

TEXT_SUFFIXES = {".txt"}


def fetch_textfolder(path: str, dest: Path, cfg: Any) -> str:
    """Keep the user's texts as one file in data/raw: an archive as given, a directory packed."""
    return fetch_folder(path, dest, Limits.of(cfg.archive), "texts.tar")


def _decode(data: bytes, where: str) -> list[str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"textfolder: {where} is not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    words = list(islice(tokens(text), MAX_DOCUMENT_WORDS + 1))  # counted while tokenizing, never past the limit
    if len(words) > MAX_DOCUMENT_WORDS:
        raise DataError(
            f"textfolder: {where} has over {MAX_DOCUMENT_WORDS:,} words, more than one document may; "
            "cut it into several"
        )
    return words


def read_textfolder(raw_dir: Path, cfg: Any, files: tuple[RawFile, ...] = ()) -> RawData:
    """Rows [START, ids...] padded with PAD; ids index words: RESERVED_WORDS, then the sorted distinct
    words of every file, split by text.tokenize (the normalise stage fits the vocabulary on the training
    split)."""
    found = collect(archive_in(raw_dir), Limits.of(cfg.archive), TEXT_SUFFIXES, _decode, "reading texts")
    classes, has_test = check_classes(found, "textfolder", ".txt files")
    splits = ("train", "test") if has_test else ("train",)
    docs = {s: [doc for cls in classes for doc in found[s][cls]] for s in splits}
    vocabulary = sorted({w for s in splits for doc in docs[s] for w in doc})
    ids = {w: i for i, w in enumerate(vocabulary, FIRST_WORD)}
    x = pad_documents(*([[ids[w] for w in doc] for doc in docs[s]] for s in splits), where="textfolder")
    y = [_labels(found, s, classes) for s in splits]
    x_test, y_test = (x[1], y[1]) if has_test else (None, None)
    words = [*RESERVED_WORDS, *vocabulary]
    return RawData(x[0], y[0], x_test, y_test, classes, "text", "classification", words=words)


def _labels(found: Found[list[str]], split: str, classes: list[str]) -> np.ndarray:
    return np.asarray([i for i, cls in enumerate(classes) for _ in found[split][cls]], dtype=np.int64)
