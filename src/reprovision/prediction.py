"""Class probabilities for image files: the one path `reprovision predict` and the served
MLflow model share (decode, resize, normalise with the training statistics, softmax)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from reprovision.data.imagefolder import decode_image
from reprovision.errors import BadInput
from reprovision.models.classifier import ImageClassifier

BATCH = 256  # images decoded and classified at a time


def class_probabilities(module: ImageClassifier, images: list[bytes], names: list[str]) -> np.ndarray:
    """(N, classes) probabilities for image files of any size or mode: each is decoded, converted
    to the model's channels and size, and normalised with the training split's statistics. Files
    are decoded a batch at a time, so memory stays bounded for any number of them."""
    channels, height, width = module.hparams.image_shape
    if height != width:
        raise BadInput(f"model input {height}x{width} is not square; predict resizes images to a square")
    out = []
    with torch.no_grad():
        for start in range(0, len(images), BATCH):
            batch = zip(images[start : start + BATCH], names[start : start + BATCH], strict=True)
            pixels = np.stack([decode_image(data, name, channels, height) for data, name in batch])
            out.append(torch.softmax(module(module.preprocess(torch.from_numpy(pixels))), dim=1).numpy())
    return np.concatenate(out).astype(np.float64)


def probability_frame(probs: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """The served model's answer: predicted class, its probability, then one column per class."""
    frame = pd.DataFrame(probs, columns=[f"p_{c}" for c in classes])
    frame.insert(0, "confidence", probs.max(axis=1))
    frame.insert(0, "predicted", [classes[i] for i in probs.argmax(axis=1)])
    return frame


def top_k(probs: np.ndarray, classes: list[str], k: int) -> list[list[dict]]:
    """The k most probable classes of each image, most probable first (ties: class order)."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [
        [{"class": classes[j], "probability": float(p[j])} for j in row] for p, row in zip(probs, order, strict=True)
    ]
