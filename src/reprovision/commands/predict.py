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

from reprovision.errors import BadInput
from reprovision.models.classifier import ImageClassifier, load_classifier
from reprovision.prediction import class_probabilities, top_k
from reprovision.urls import masked


def load_model(model: str, tracking_uri: str | None) -> ImageClassifier:
    """The classifier at a checkpoint path, or the checkpoint of an MLflow model (downloaded to a
    temporary directory, loaded with weights_only=True, removed)."""
    if not model.startswith(("runs:/", "models:/")):
        path = Path(model)
        path = path / "model.ckpt" if path.is_dir() else path
        if not path.is_file():
            raise BadInput(f"{model}: no checkpoint there; train first (dvc repro) or pass --model PATH|runs:/ID/model")
        return load_classifier(path)
    import mlflow
    import yaml
    from mlflow.exceptions import MlflowException

    from reprovision import tracking

    uri = tracking_uri or default_tracking_uri()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            # The store as MLflow's global URI: download_artifacts' own `tracking_uri` argument does
            # not reach the lookup of a run's logged model behind `runs:/ID/model`.
            with tracking.fluent_api(uri):
                local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model, dst_path=tmp)).resolve()
        except (MlflowException, OSError) as e:
            first = str(e).splitlines()[0][:200]
            raise BadInput(f"{model}: not found in {masked(uri)} ({first}); check the URI or --tracking-uri") from None
        meta = yaml.safe_load((local / "MLmodel").read_text())
        try:
            checkpoint = (local / meta["flavors"]["python_function"]["artifacts"]["checkpoint"]["path"]).resolve()
        except (KeyError, TypeError):
            raise BadInput(f"{model}: not a model logged by this pipeline (it has no checkpoint artifact)") from None
        if not checkpoint.is_relative_to(local):  # metadata from the store names only files in the model
            raise BadInput(f"{model}: its MLmodel points outside the model directory; refusing it")
        return load_classifier(checkpoint)


def default_tracking_uri() -> str:
    """The store the pipeline tracks into: $MLFLOW_TRACKING_URI, else params.yaml's tracking.uri,
    else the project's SQLite store."""
    from reprovision import tracking
    from reprovision.config import load_config

    if Path("params.yaml").is_file():
        return tracking.tracking_uri(load_config("params.yaml"))  # the same precedence as the stages
    return os.environ.get("MLFLOW_TRACKING_URI") or tracking.DEFAULT_URI


def read_image_file(path: Path) -> bytes:
    """The file's bytes; a directory or an unreadable file is a one-line BadInput (a missing file:
    FileNotFoundError, exit 2 too)."""
    if path.is_dir():
        raise BadInput(f"{path}: a directory, not an image file; pass the images in it (e.g. {path}/*.png)")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise BadInput(f"{path}: cannot be read ({e.strerror or e}); check the path and its permissions") from None


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
        help="MLflow store for runs:/ and models:/ URIs (default: $MLFLOW_TRACKING_URI, else params.yaml's "
        "tracking.uri, else sqlite:///mlflow.db)",
    )


def run(args: argparse.Namespace) -> None:
    if args.top_k < 1:
        raise BadInput(f"--top-k {args.top_k}: expected an integer >= 1")
    module = load_model(args.model, args.tracking_uri)
    classes = module.hparams.classes
    images = [read_image_file(path) for path in args.images]
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
