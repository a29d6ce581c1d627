"""What is fitted on the training split only: image channel statistics, table column statistics, a
text vocabulary (the most frequent words of the training split).

No normalised copy of the data is written. Images and table rows stay as the split stage wrote
them (uint8 pixels, float rows) and are normalised a batch at a time where the batch lives, by
the net's own preprocessing (`predictor.Inference.preprocess`), the same code `predict` and the
served model run. Text is the one input encoded here: its vocabulary ids, per split.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from fractions import Fraction
from math import sqrt
from pathlib import Path

import numpy as np

from reprovision.data import SPLITS
from reprovision.data.raw import FIRST_WORD, PAD, RESERVED_WORDS, UNKNOWN
from reprovision.data.shards import Shards, ShardWriter
from reprovision.files import atomic_dir, read_json, write_json

CHUNK_BYTES = 2**24  # pixels counted at a time: 16 MB, and 8 times that while numpy's bincount counts them


def chunks(x: np.ndarray, size: int = CHUNK_BYTES) -> Iterator[np.ndarray]:
    """`x` in slices of whole images, about `size` bytes each."""
    rows = max(1, size // max(1, x[:1].nbytes))
    for start in range(0, len(x), rows):
        yield x[start : start + rows]


def channel_stats(images: np.ndarray | Iterator[np.ndarray]) -> tuple[list[float], list[float]]:
    """Mean and standard deviation per channel of uint8 images (N, C, H, W), in [0, 1] units.

    Exact: counted from each channel's histogram of the 256 byte values in integers, so they do
    not depend on how the images are chunked, ordered or sharded, nor on the machine's float
    kernels; each is the float nearest the true value (the square root of the nearest variance).
    """
    counts = None
    for x in chunks(images) if isinstance(images, np.ndarray) else images:
        h = np.stack([np.bincount(x[:, c].ravel(), minlength=256) for c in range(x.shape[1])])
        counts = h if counts is None else counts + h
    means, stds = [], []
    for row in counts.tolist():  # Python integers: no overflow at any size
        n = sum(row)
        s = sum(v * k for v, k in enumerate(row))
        q = sum(v * v * k for v, k in enumerate(row))
        means.append(float(Fraction(s, n * 255)))
        var = float(Fraction(q * n - s * s, n * n * 255 * 255))
        stds.append(sqrt(var) if var >= 1e-12 else 1.0)  # a constant channel: leave it unscaled
    return means, stds


def blocks(rows: np.ndarray | Shards) -> Iterator[np.ndarray]:
    """The inputs of an array or a split's shards, a block of whole rows of about CHUNK_BYTES at a time."""
    return chunks(rows) if isinstance(rows, np.ndarray) else (x for x, _ in rows.blocks(CHUNK_BYTES))


def column_stats(rows: np.ndarray | Shards) -> tuple[list[float], list[float]]:
    """Mean and standard deviation of each column of a table (N, F), in float64 over two passes
    of blocks of rows: a table of one block (up to 16 MB) gets numpy's `mean` and `std` to the
    bit, a larger one the same bytes whatever its shards."""
    n, total = 0, 0.0
    for x in blocks(rows):
        n, total = n + len(x), total + x.astype(np.float64).sum(axis=0)
    mean = total / n
    squares = sum(np.square(x.astype(np.float64) - mean).sum(axis=0) for x in blocks(rows))
    std = np.sqrt(squares / n)
    std[std < 1e-12] = 1.0  # a constant column: leave it unscaled
    return mean.tolist(), std.tolist()


def fit_vocabulary(tokens: np.ndarray | Shards, num_words: int) -> np.ndarray:
    """The dataset's ids of the `num_words - FIRST_WORD` most frequent words of `tokens` (the
    training split, counted a block at a time), most frequent first; ties go to the lower id, so
    the choice is fixed."""
    counts = np.zeros(FIRST_WORD, np.int64)
    for x in blocks(tokens):
        found = np.bincount(x.ravel(), minlength=len(counts))
        counts = found + np.pad(counts, (0, len(found) - len(counts)))  # found is never the shorter
    counts[:FIRST_WORD] = 0
    order = np.lexsort((np.arange(len(counts)), -counts))  # by count descending, then id
    keep = order[: num_words - FIRST_WORD]
    return keep[counts[keep] > 0]


def encode_tokens(tokens: np.ndarray, vocabulary_ids: np.ndarray, max_length: int | None) -> np.ndarray:
    """Dataset ids to vocabulary ids (FIRST_WORD + rank; UNKNOWN for any other word), START and
    PAD kept, each document cut to its first `max_length` words."""
    table = np.full(max(int(tokens.max(initial=0)), int(vocabulary_ids.max(initial=0))) + 1, UNKNOWN, np.int32)
    table[:FIRST_WORD] = np.arange(FIRST_WORD)
    table[vocabulary_ids] = FIRST_WORD + np.arange(len(vocabulary_ids))
    out = table[tokens]
    if max_length is not None:
        out = out[:, : max_length + 1]  # + the START token
    used = int((out != PAD).sum(axis=1).max(initial=1))
    return out[:, :used]


Encoder = Callable[[np.ndarray], np.ndarray]


def fit(kind: str, train: Shards, split_dir: Path, num_words: int, max_length: int | None):
    """The inputs' fit on the `train` shards (the dataset's summary.json and words.json in
    `split_dir`), and for text the encoder that applies it to any split (images and table rows
    are normalised per batch: None). Pixels, columns and words are counted a block at a time: the
    split is never in memory."""
    if kind == "image":
        mean, std = channel_stats(blocks(train))
        return {"kind": kind, "shape": list(train.x_shape), "mean": mean, "std": std}, None
    if kind == "table":
        mean, std = column_stats(train)
        features = read_json(split_dir / "summary.json")["features"]
        return {"kind": kind, "features": features, "mean": mean, "std": std}, None
    words = read_json(split_dir / "words.json")
    ids = fit_vocabulary(train, num_words)
    vocabulary = [*RESERVED_WORDS, *(words[i] for i in ids)]
    inputs = {"kind": kind, "vocabulary": vocabulary, "max_length": max_length}
    return inputs, lambda x: encode_tokens(x, ids, max_length)


def write_encoded(out_dir: Path, splits: dict[str, Shards], encode: Encoder, inputs: dict) -> None:
    """Each split's vocabulary ids, padded to one length (the longest document after encoding),
    encoded and written a block at a time: once to find that length, once to write."""
    length = max(encode(x).shape[1] for split in splits.values() for x in blocks(split))
    inputs["longest"] = length - 1  # words: predict and serve cut any document there
    for name, split in splits.items():
        writer, at = ShardWriter(out_dir / name, split.y), 0
        for x in blocks(split):
            ids = encode(x)
            writer.put(at, np.pad(ids, ((0, 0), (0, length - ids.shape[1]))))
            at += len(ids)
        writer.close()


def normalise(split_dir: Path, out_dir: Path, num_words: int = 10000, max_length: int | None = None) -> dict:
    """Fit on the training split; stats.json says what was fitted (the model keeps it), and for
    text each split's encoding is written beside it."""
    summary = read_json(split_dir / "summary.json")
    kind = summary.get("kind", "image")
    train = Shards(split_dir / "train")
    inputs, encode = fit(kind, train, split_dir, num_words, max_length)
    stats = {"task": summary.get("task", "classification"), "classes": summary["classes"],
             "target": summary.get("target", ""), "inputs": inputs}  # fmt: skip
    if stats["task"] == "regression":  # where the net's output starts: the training mean (the mean baseline)
        stats["target_mean"] = float(np.mean(train.y, dtype=np.float64))
    with atomic_dir(out_dir) as tmp:
        if encode is not None:
            write_encoded(tmp, {s: Shards(split_dir / s) for s in SPLITS}, encode, inputs)
        write_json(tmp / "stats.json", stats)
    return stats


def net_inputs(split_dir: Path, data_dir: Path, split: str, kind: str) -> dict[str, np.ndarray]:
    """A split's `x` and `y` as the net's preprocessing takes them, for inputs of `kind`: the split
    stage's uint8 images or table rows, or (text) the normalise stage's vocabulary ids."""
    shards = net_shards(split_dir, data_dir, split, kind)
    return {"x": shards.inputs(), "y": shards.y}


def net_shards(split_dir: Path, data_dir: Path, split: str, kind: str) -> Shards:
    """`net_inputs`' split as shards, read a batch at a time."""
    return Shards((data_dir if kind == "text" else split_dir) / split)
