"""Words of a text: the one tokenizer for text folders, `reprovision predict --text` and the served
model, and the encoding of a document into a trained model's vocabulary ids."""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import islice

import numpy as np

from reprovision.data.raw import FIRST_WORD, START, UNKNOWN

# Lowercase runs of letters and digits, with inner apostrophes kept ("don't", "it's").
WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def tokens(text: str) -> Iterator[str]:
    """The words of `text`, one at a time: a reader that needs only the first few takes only those."""
    return (match.group() for match in WORD.finditer(text.lower()))


def tokenize(text: str) -> list[str]:
    return list(tokens(text))


def encode(texts: list[str], vocabulary: list[str], max_length: int | None = None) -> np.ndarray:
    """Documents to rows of vocabulary ids (N, L) as the model was trained on: START, then each
    word's id (UNKNOWN outside the vocabulary), the first `max_length` words, padded with 0."""
    index = {w: i for i, w in enumerate(vocabulary) if i >= FIRST_WORD}
    rows = [[START, *(index.get(w, UNKNOWN) for w in islice(tokens(t), max_length))] for t in texts]
    out = np.zeros((len(rows), max(map(len, rows), default=1)), dtype=np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def decode(ids, vocabulary: list[str]) -> str:
    """A row of vocabulary ids back to its words (padding and START dropped)."""
    return " ".join(vocabulary[i] for i in ids if i > START)
