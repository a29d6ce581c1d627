"""A trained model's answers for raw inputs: the one path `reprovision predict` and the served MLflow
model share. Image files are decoded, resized and normalised with the training statistics; table
rows are picked by feature name and normalised; documents are encoded into the model's vocabulary.
Classification answers class probabilities (softmax), regression the predicted values."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd
import torch

from reprovision.data.imagefolder import decode_image
from reprovision.data.text import encode
from reprovision.errors import BadInput
from reprovision.models.predictor import Predictor

BATCH = 256  # inputs decoded and run through the net at a time: memory stays bounded for any number


def answers(module: Predictor, batches: Iterable[np.ndarray]) -> np.ndarray:
    """The model's answer for each raw row of each batch: (N, classes) probabilities for a
    classifier, (N,) predicted values for a regression model; float64."""
    classify = module.task.name == "classification"
    out = [np.empty((0, len(module.hparams.classes)) if classify else 0)]  # no rows: no answers
    with torch.no_grad():
        for raw in batches:
            outputs = module(module.preprocess(torch.from_numpy(raw)))
            out.append((torch.softmax(outputs, dim=1) if classify else outputs).numpy())
    return np.concatenate(out).astype(np.float64)


def _batches(n: int) -> Iterator[slice]:
    return (slice(start, start + BATCH) for start in range(0, n, BATCH))


def predict_images(module: Predictor, images: list[bytes], names: list[str]) -> np.ndarray:
    """Answers for image files of any size or mode: each is decoded, converted to the model's
    channels and size (`names` say which file a decoding error is about), then normalised."""
    channels, height, width = module.hparams.inputs["shape"]
    if height != width:
        raise BadInput(f"model input {height}x{width} is not square; predict resizes images to a square")

    def decoded(part: slice) -> np.ndarray:
        return np.stack(
            [decode_image(data, name, channels, height) for data, name in zip(images[part], names[part], strict=True)]
        )

    return answers(module, (decoded(part) for part in _batches(len(images))))


def predict_texts(module: Predictor, texts: list[str]) -> np.ndarray:
    """Answers for documents: tokenized and encoded into the model's vocabulary as its training
    split was (unknown words to UNKNOWN, cut to `max_length` words), and never longer than the
    longest document the model was trained on: one huge request cannot make every batch huge."""
    inputs = module.hparams.inputs
    limit = inputs.get("max_length") or inputs.get("longest")
    encoded = (encode(texts[part], inputs["vocabulary"], limit) for part in _batches(len(texts)))
    return answers(module, encoded)


def table_rows(module: Predictor, frame: pd.DataFrame, where: str, rows: list[str]) -> np.ndarray:
    """The model's feature columns of `frame`, picked by name in the model's order, as float32
    (N, F). Other columns (the target, an id) are ignored. A missing feature column, or a cell that
    is not a finite number, is a one-line BadInput naming it (`where` the source, `rows` its rows)."""
    features = module.hparams.inputs["features"]
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise BadInput(
            f"{where}: no column {missing[0]!r}; the model takes the feature columns {', '.join(features)} "
            "(by name, in any order)"
        )
    out = np.empty((len(frame), len(features)), dtype=np.float32)
    for j, name in enumerate(features):
        column = frame[name]
        if isinstance(column, pd.DataFrame):  # two columns of that name: which one is meant is unclear
            raise BadInput(f"{where}: the column {name!r} appears twice; keep one")
        numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(over="ignore"):  # beyond float32's range becomes inf, refused below
            out[:, j] = numbers
        bad = np.flatnonzero(~np.isfinite(out[:, j]))
        if len(bad):
            value = column.iloc[bad[0]]
            value = value.item() if isinstance(value, np.generic) else value
            empty = value is None or (isinstance(value, float) and np.isnan(value))
            what = "has no value" if empty else f"{value!r} is not a finite number"
            raise BadInput(f"{where}: column {name!r}, {rows[bad[0]]}: {what}; give every feature a number")
    return out


def predict_table(module: Predictor, frame: pd.DataFrame, where: str, rows: list[str]) -> np.ndarray:
    """Answers for table rows of raw feature values (see table_rows), normalised with the training
    split's statistics."""
    x = table_rows(module, frame, where, rows)
    return answers(module, (x[part] for part in _batches(len(x))))


def predict_frame(module: Predictor, frame: pd.DataFrame) -> pd.DataFrame:
    """The served model: a frame of inputs as the model takes them (an `image` column of base64
    image files, a `text` column of documents, or the table's feature columns) to a frame of
    answers (answer_frame). Errors name rows by position, from 0."""
    kind = module.hparams.inputs["kind"]
    rows = [f"row {i}" for i in range(len(frame))]
    if kind == "table":
        return answer_frame(module, predict_table(module, frame, "input", rows))
    if kind not in frame.columns:
        raise BadInput(f"input has no `{kind}` column (it has {', '.join(map(str, frame.columns))}); {TAKES[kind]}")
    column = frame[kind].tolist()
    if kind == "text":
        for row, text in zip(rows, column, strict=True):
            if not isinstance(text, str):
                raise BadInput(f"{row}: `text` is {type(text).__name__}, not a string; send each document as text")
        return answer_frame(module, predict_texts(module, column))
    images = []
    for row, data in zip(rows, column, strict=True):
        try:
            images.append(base64.b64decode(data, validate=True))
        except (binascii.Error, ValueError, TypeError):
            raise BadInput(f"{row}: `image` is not base64; send the image file's bytes base64-encoded") from None
    return answer_frame(module, predict_images(module, images, rows))


TAKES = {  # what the served model takes in a column named after the input kind
    "image": "the model takes an `image` column: each image file's bytes, base64-encoded",
    "text": "the model takes a `text` column: one document per row",
}


def answer_frame(module: Predictor, answers: np.ndarray) -> pd.DataFrame:
    """The served model's answer: a regression model's `predicted` values, or a classifier's
    probability_frame."""
    if module.task.name == "regression":
        return pd.DataFrame({"predicted": answers})
    return probability_frame(answers, module.hparams.classes)


def probability_frame(probs: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Predicted class, its probability, then one column per class."""
    frame = pd.DataFrame(probs, columns=[f"p_{c}" for c in classes])
    frame.insert(0, "confidence", probs.max(axis=1))
    frame.insert(0, "predicted", [classes[i] for i in probs.argmax(axis=1)])
    return frame


def top_k(probs: np.ndarray, classes: list[str], k: int) -> list[list[dict]]:
    """The k most probable classes of each input, most probable first (ties: class order)."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [
        [{"class": classes[j], "probability": float(p[j])} for j in row] for p, row in zip(probs, order, strict=True)
    ]
