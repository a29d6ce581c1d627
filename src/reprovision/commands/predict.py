"""predict: classify image files with a trained model; top-k classes with probabilities.

The model is a checkpoint path (default `models/model.ckpt`) or an MLflow model URI
(`runs:/ID/model`, `models:/NAME@champion`, `models:/NAME/3`). From MLflow only the checkpoint
is taken, and loaded with weights_only=True: no code from the model store is run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from reprovision.data.sources import decode_image
from reprovision.errors import BadInput
from reprovision.models.system import ImageClassifier, load_classifier

BATCH = 256  # images per forward pass: bounded memory for any number of files


def class_probabilities(module: ImageClassifier, images: list[bytes], names: list[str]) -> np.ndarray:
    """(N, classes) probabilities for image files of any size or mode: each is decoded, converted
    to the model's channels and size, and normalised with the training split's statistics."""
    channels, height, width = module.hparams.image_shape
    if height != width:
        raise BadInput(f"model input {height}x{width} is not square; predict resizes images to a square")
    pixels = np.stack([decode_image(data, name, channels, height) for data, name in zip(images, names, strict=True)])
    out = []
    with torch.no_grad():
        for start in range(0, len(pixels), BATCH):
            x = module.preprocess(torch.from_numpy(pixels[start : start + BATCH]))
            out.append(torch.softmax(module(x), dim=1).numpy())
    return np.concatenate(out).astype(np.float64)


def probability_frame(probs: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """The served model's answer: predicted class, its probability, then one column per class."""
    frame = pd.DataFrame(probs, columns=[f"p_{c}" for c in classes])
    frame.insert(0, "confidence", probs.max(axis=1))
    frame.insert(0, "predicted", [classes[i] for i in probs.argmax(axis=1)])
    return frame


def resolve_checkpoint(model: str, tracking_uri: str) -> Path:
    """A local checkpoint for `model`: the path itself, or the checkpoint of an MLflow model."""
    if not model.startswith(("runs:/", "models:/")):
        path = Path(model)
        path = path / "model.ckpt" if path.is_dir() else path
        if not path.is_file():
            raise BadInput(f"{model}: no checkpoint there; train first (dvc repro) or pass --model PATH|runs:/ID/model")
        return path
    import mlflow
    import yaml
    from mlflow.exceptions import MlflowException

    from reprovision.tracking import fluent_api

    try:
        # The store as MLflow's global URI: download_artifacts' own `tracking_uri` argument does not
        # reach the lookup of a run's logged model behind `runs:/ID/model`.
        with fluent_api(tracking_uri):
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model, dst_path=tempfile.mkdtemp()))
    except (MlflowException, OSError) as e:
        first = str(e).splitlines()[0][:200]
        raise BadInput(f"{model}: not found in {tracking_uri} ({first}); check the URI or --tracking-uri") from None
    meta = yaml.safe_load((local / "MLmodel").read_text())
    try:
        relative = meta["flavors"]["python_function"]["artifacts"]["checkpoint"]["path"]
    except (KeyError, TypeError):
        raise BadInput(f"{model}: not a model logged by this pipeline (it has no checkpoint artifact)") from None
    return local / relative


def top_k(probs: np.ndarray, classes: list[str], k: int) -> list[list[dict]]:
    """The k most probable classes of each image, most probable first (ties: class order)."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [
        [{"class": classes[j], "probability": float(p[j])} for j in row] for p, row in zip(probs, order, strict=True)
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", type=Path, help="image files (any size or mode PIL reads)")
    parser.add_argument(
        "--model",
        default="models/model.ckpt",
        help="checkpoint path, or MLflow model URI: runs:/ID/model, models:/NAME@champion, models:/NAME/VERSION",
    )
    parser.add_argument("--top-k", type=int, default=3, help="classes shown per image (default 3)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"),
        help="MLflow store for runs:/ and models:/ URIs (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )


def run(args: argparse.Namespace) -> None:
    if args.top_k < 1:
        raise BadInput(f"--top-k {args.top_k}: expected an integer >= 1")
    module = load_classifier(resolve_checkpoint(args.model, args.tracking_uri))
    classes = module.hparams.classes
    images = [path.read_bytes() for path in args.images]  # a missing file: FileNotFoundError, exit 2
    probs = class_probabilities(module, images, [str(p) for p in args.images])
    results = top_k(probs, classes, min(args.top_k, len(classes)))
    if args.json:
        print(json.dumps([{"image": str(p), "top": r} for p, r in zip(args.images, results, strict=True)], indent=2))
        return
    width = max(len("image"), *(len(str(p)) for p in args.images))
    print(f"{'image':<{width}}  {'class':<12} probability")
    for path, result in zip(args.images, results, strict=True):
        for rank, guess in enumerate(result):
            print(f"{str(path) if rank == 0 else '':<{width}}  {guess['class']:<12} {guess['probability']:.4f}")
