"""Documents of token ids as RawData holds text: int32 rows [START, ids...] padded with PAD."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np

from reprovision.data.raw import PAD, START
from reprovision.errors import DataError

# Padded rows cost (documents x longest document) cells: one huge file among many short ones
# would otherwise take memory the size of every document padded to it. 2^28 int32 cells are 1 GiB
# (IMDB's 50,000 reviews padded to its longest, 2,494 words, are 125 million).
MAX_PADDED_CELLS = 2**28
# One document: a long novel (War and Peace has 587,287 words). Counted while tokenizing, so a huge
# file costs its bytes, never a word list of its size (a 500 MB line would be 8 GB of words).
MAX_DOCUMENT_WORDS = 2**20


def pad_documents(*splits: Sequence[Sequence[int]], offset: int = 0, where: str = "text") -> list[np.ndarray]:
    """Each split's documents (each a sequence of ids, `offset` added to every id) as int32 rows
    [START, ids...], padded with PAD to the one longest document of all splits: their rows line up.
    Refused, before anything is allocated, when that would take over MAX_PADDED_CELLS cells."""
    lengths = [np.fromiter(map(len, docs), dtype=np.int64, count=len(docs)) for docs in splits]
    width = 1 + max((int(n.max()) for n in lengths if len(n)), default=0)
    documents = sum(map(len, lengths))
    if documents * width > MAX_PADDED_CELLS:
        raise DataError(
            f"{where}: the longest document has {width - 1:,} words; padding all {documents:,} documents to it "
            f"would take {documents * width * 4 / 2**30:.1f} GiB (limit {MAX_PADDED_CELLS * 4 / 2**30:g} GiB): "
            "shorten that document or cut it into several"
        )
    rows = []
    for docs, n in zip(splits, lengths, strict=True):
        flat = np.fromiter(chain.from_iterable(docs), dtype=np.int64, count=int(n.sum())) + offset
        if len(flat) and (flat.min() < offset or flat.max() >= np.iinfo(np.int32).max):
            raise DataError(f"{where}: token ids run {flat.min() - offset}..{flat.max() - offset}, not 0..2^31")
        x = np.full((len(docs), width), PAD, dtype=np.int32)
        x[:, 0] = START
        # Row-major: the mask's True cells are each document's ids in order, the documents in order.
        x[:, 1:][np.arange(1, width)[None, :] <= n[:, None]] = flat
        rows.append(x)
    return rows
