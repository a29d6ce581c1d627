"""What is fitted on the training split only and applied to every split: image channel statistics,
table column statistics, a text vocabulary (the most frequent words of the training split)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reprovision.data import SPLITS
from reprovision.data.raw import FIRST_WORD, PAD, RESERVED_WORDS, UNKNOWN
from reprovision.files import atomic_dir, load_arrays, read_json, save_arrays, write_json


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Mean and standard deviation per channel of uint8 images (N, C, H, W), in [0, 1] units."""
    x = images.astype(np.float64) / 255.0
    mean = x.mean(axis=(0, 2, 3))
    std = x.std(axis=(0, 2, 3))
    std[std < 1e-6] = 1.0  # a constant channel carries no information: leave it unscaled
    return mean.tolist(), std.tolist()


def normalise_images(images: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """uint8 images to float32, (x / 255 - mean) / std per channel."""
    m = np.asarray(mean, dtype=np.float32)[None, :, None, None]
    s = np.asarray(std, dtype=np.float32)[None, :, None, None]
    return (images.astype(np.float32) / 255.0 - m) / s


def column_stats(rows: np.ndarray) -> tuple[list[float], list[float]]:
    """Mean and standard deviation of each column of a table (N, F)."""
    x = rows.astype(np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std < 1e-12] = 1.0  # a constant column: leave it unscaled
    return mean.tolist(), std.tolist()


def normalise_rows(rows: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    return ((rows.astype(np.float64) - np.asarray(mean)) / np.asarray(std)).astype(np.float32)


def fit_vocabulary(tokens: np.ndarray, num_words: int) -> np.ndarray:
    """The dataset's ids of the `num_words - FIRST_WORD` most frequent words of `tokens` (the
    training split), most frequent first; ties go to the lower id, so the choice is fixed."""
    counts = np.bincount(tokens.ravel(), minlength=FIRST_WORD)
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


def fit(kind: str, train_x: np.ndarray, split_dir: Path, num_words: int, max_length: int | None):
    """The inputs' fit on the training split, and the function that applies it to any split."""
    if kind == "image":
        mean, std = channel_stats(train_x)
        inputs = {"kind": kind, "shape": list(train_x.shape[1:]), "mean": mean, "std": std}
        return inputs, lambda x: normalise_images(x, mean, std)
    if kind == "table":
        mean, std = column_stats(train_x)
        features = read_json(split_dir / "summary.json")["features"]
        return {"kind": kind, "features": features, "mean": mean, "std": std}, lambda x: normalise_rows(x, mean, std)
    words = read_json(split_dir / "words.json")
    ids = fit_vocabulary(train_x, num_words)
    vocabulary = [*RESERVED_WORDS, *(words[i] for i in ids)]
    inputs = {"kind": kind, "vocabulary": vocabulary, "max_length": max_length}
    return inputs, lambda x: encode_tokens(x, ids, max_length)


def normalise(split_dir: Path, out_dir: Path, num_words: int = 10000, max_length: int | None = None) -> dict:
    """Fit on the training split, apply to all; stats.json says what was fitted (the model keeps it)."""
    summary = read_json(split_dir / "summary.json")
    data = {s: load_arrays(split_dir / f"{s}.npz") for s in SPLITS}
    kind = summary.get("kind", "image")
    inputs, apply = fit(kind, data["train"]["x"], split_dir, num_words, max_length)
    stats = {"task": summary.get("task", "classification"), "classes": summary["classes"],
             "target": summary.get("target", ""), "inputs": inputs}  # fmt: skip
    if stats["task"] == "regression":  # where the net's output starts: the training mean (the mean baseline)
        stats["target_mean"] = float(np.mean(data["train"]["y"], dtype=np.float64))
    with atomic_dir(out_dir) as tmp:
        xs = {s: apply(data[s]["x"]) for s in SPLITS}
        if kind == "text":  # one length for all splits: the longest document after encoding
            length = max(x.shape[1] for x in xs.values())
            xs = {s: np.pad(x, ((0, 0), (0, length - x.shape[1]))) for s, x in xs.items()}
            inputs["longest"] = length - 1  # words: predict and serve cut any document there
        for s in SPLITS:
            save_arrays(tmp / f"{s}.npz", x=xs[s], y=data[s]["y"])
        write_json(tmp / "stats.json", stats)
    return stats
