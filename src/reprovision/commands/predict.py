"""predict: a trained model's answers for image files, documents or table rows: the top-k classes
with their probabilities (a classifier), or the predicted value (a regression model).

Give inputs of the one kind the model was trained on: image files (any size or mode), documents
(--text, --text-file), or a CSV of table rows (--table) whose header names the model's features
(in any order; other columns, such as the target, are ignored).

The model is a checkpoint path (default `models/model.ckpt`) or an MLflow model URI
(`runs:/ID/model`, `models:/NAME@champion`, `models:/NAME/3`). From MLflow only the checkpoint
is taken, and loaded with weights_only=True: no code from the model store is run.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from reprovision.errors import BadInput
from reprovision.models.predictor import Predictor, load_predictor
from reprovision.prediction import predict_images, predict_table, predict_texts, top_k
from reprovision.urls import masked


def open_model(model: str, tracking_uri: str | None) -> Predictor:
    """The model at a checkpoint path, or the checkpoint of an MLflow model (downloaded to a
    temporary directory, loaded with weights_only=True, removed)."""
    if not model.startswith(("runs:/", "models:/")):
        path = Path(model)
        path = path / "model.ckpt" if path.is_dir() else path
        if not path.is_file():
            raise BadInput(f"{model}: no checkpoint there; train first (dvc repro) or pass --model PATH|runs:/ID/model")
        return load_predictor(path)
    import mlflow
    import yaml
    from mlflow.exceptions import MlflowException

    from reprovision import tracking

    uri = tracking_uri or default_tracking_uri()
    tracking.check_reachable(uri)  # a server that does not answer: one line in seconds, as train says it
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
        return load_predictor(checkpoint)


def default_tracking_uri() -> str:
    """The store the pipeline tracks into: $MLFLOW_TRACKING_URI, else params.yaml's tracking.uri,
    else the project's SQLite store."""
    from reprovision import tracking
    from reprovision.config import load_config

    if Path("params.yaml").is_file():
        return tracking.tracking_uri(load_config("params.yaml"))  # the same precedence as the stages
    return os.environ.get("MLFLOW_TRACKING_URI") or tracking.DEFAULT_URI


MAX_INPUT_MIB = 64  # one input file (an image, a document, a CSV of rows) is read whole: bounded


def check_input_file(path: Path, what: str, pattern: str) -> None:
    """A regular file of at most MAX_INPUT_MIB, checked before it is opened: a directory, a pipe
    or device (`/dev/zero` never ends, a FIFO blocks) or a larger file is a one-line BadInput (a
    missing file: FileNotFoundError, exit 2 too)."""
    if path.is_dir():
        raise BadInput(f"{path}: a directory, not {what}; pass the files in it (e.g. {path}/{pattern})")
    try:
        info = path.stat()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise BadInput(f"{path}: cannot be read ({e.strerror or e}); check the path and its permissions") from None
    if not stat.S_ISREG(info.st_mode):
        raise BadInput(f"{path}: not a regular file (a pipe, socket or device); save {what} to a file and pass that")
    if info.st_size > MAX_INPUT_MIB << 20:
        raise BadInput(
            f"{path}: {info.st_size:,} bytes, over the {MAX_INPUT_MIB} MiB predict reads from one file; "
            "split it into smaller files"
        )


def read_input_file(path: Path, what: str, pattern: str) -> bytes:
    """The file's bytes, once check_input_file passed it."""
    check_input_file(path, what, pattern)
    try:
        with path.open("rb") as f:
            data = f.read((MAX_INPUT_MIB << 20) + 1)  # a file that grew since: never past the limit
    except OSError as e:
        raise BadInput(f"{path}: cannot be read ({e.strerror or e}); check the path and its permissions") from None
    if len(data) > MAX_INPUT_MIB << 20:
        raise BadInput(f"{path}: over the {MAX_INPUT_MIB} MiB predict reads from one file; split it into smaller files")
    return data


def read_text_file(path: Path) -> str:
    """A document: the whole file as UTF-8 text (a byte-order mark is dropped)."""
    data = read_input_file(path, "a text file", "*.txt")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadInput(
            f"{path}: not UTF-8 text (byte {e.start} is {data[e.start : e.start + 1]!r}); save it as UTF-8"
        ) from None


def read_table(path: Path) -> pd.DataFrame:
    """The rows of a CSV file with a header, every cell as the text it holds (prediction reads the
    numbers, so a bad cell is reported as written)."""
    import io

    import pandas as pd

    data = read_input_file(path, "a CSV file of rows", "rows.csv")
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig")
        frame.columns = frame.columns.str.strip()  # as training reads a header: " area" is area
    except FileNotFoundError:
        raise
    except UnicodeDecodeError as e:
        raise BadInput(f"{path}: not UTF-8 text (byte {e.start}); save the CSV as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise BadInput(f"{path}: empty; expected a header naming the features, then one row per line") from None
    except (pd.errors.ParserError, OSError) as e:
        detail = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise BadInput(f"{path}: not a readable CSV file ({detail})") from None
    if frame.empty:
        raise BadInput(f"{path}: no rows below its header; add one row per line")
    return frame


# What each input kind is called, and how a user passes it.
KINDS = {
    "image": ("image files", "reprovision predict IMAGE..."),
    "text": ("text", '--text "a document" or --text-file PATH'),
    "table": ("table rows", "--table rows.csv (a header naming the features)"),
}


def input_kind(args: argparse.Namespace) -> str:
    """The one kind of input the command line gives: images, text (--text, --text-file) or a table."""
    given = [k for k, v in (("image", args.images), ("text", args.text or args.text_file), ("table", args.table)) if v]
    if len(given) != 1:
        how = "; ".join(f"{noun}: {usage}" for noun, usage in KINDS.values())
        detail = "nothing to predict" if not given else f"got {' and '.join(KINDS[k][0] for k in given)}"
        raise BadInput(f"{detail}: pass inputs of exactly one kind ({how})")
    return given[0]


def answers_for(module: Predictor, kind: str, args: argparse.Namespace) -> tuple[list[dict], np.ndarray]:
    """What each input is (a dict naming it, as --json prints it) and the model's answers for them."""
    if kind == "image":
        images = [read_input_file(p, "an image file", "*.png") for p in args.images]
        return [{"image": str(p)} for p in args.images], predict_images(module, images, [str(p) for p in args.images])
    if kind == "text":
        texts = list(args.text or []) + [read_text_file(p) for p in args.text_file or []]
        sources = [{"text": t} for t in args.text or []] + [{"file": str(p)} for p in args.text_file or []]
        return sources, predict_texts(module, texts)
    frame = read_table(args.table)
    rows = [f"row {i + 1}" for i in range(len(frame))]  # counted from 1 below the header
    return [{"row": i + 1} for i in range(len(frame))], predict_table(module, frame, str(args.table), rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", type=Path, help="image files (any size or mode PIL reads)")
    parser.add_argument(
        "--text", action="append", metavar="TEXT", help="a document (repeatable), for a model trained on text"
    )
    parser.add_argument(
        "--text-file", nargs="+", action="extend", type=Path, metavar="PATH", help="UTF-8 text files, one document each"
    )
    parser.add_argument(
        "--table",
        type=Path,
        metavar="CSV",
        help="a CSV file of table rows: a header naming the model's features (any order; other columns, "
        "such as the target, are ignored), one row per line",
    )
    parser.add_argument(
        "--model",
        default="models/model.ckpt",
        help="checkpoint path, or MLflow model URI: runs:/ID/model, models:/NAME@champion, models:/NAME/VERSION",
    )
    parser.add_argument("--top-k", type=int, default=3, help="classes shown per input (default 3; classifiers)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--tracking-uri",
        help="MLflow store for runs:/ and models:/ URIs (default: $MLFLOW_TRACKING_URI, else params.yaml's "
        "tracking.uri, else sqlite:///mlflow.db)",
    )


def label(source: dict) -> str:
    """An input as one cell of the printed table: a path or a row number whole (which file it is
    matters), a document's text cut to its start."""
    key, value = next(iter(source.items()))
    value = " ".join(str(value).split())
    return value if key != "text" or len(value) <= 40 else value[:37] + "..."


def run(args: argparse.Namespace) -> None:
    if args.top_k < 1:
        raise BadInput(f"--top-k {args.top_k}: expected an integer >= 1")
    kind = input_kind(args)
    module = open_model(args.model, args.tracking_uri)
    takes = module.hparams.inputs["kind"]
    if kind != takes:
        raise BadInput(f"{args.model} takes {KINDS[takes][0]}, not {KINDS[kind][0]}: pass {KINDS[takes][1]}")
    sources, answers = answers_for(module, kind, args)
    header = {"image": "image", "text": "text", "table": "row"}[kind]
    width = max(len(header), *(len(label(s)) for s in sources))
    if module.task.name == "regression":
        if args.json:
            print(json.dumps([{**s, "predicted": float(v)} for s, v in zip(sources, answers, strict=True)], indent=2))
            return
        print(f"{header:<{width}}  predicted")
        for source, value in zip(sources, answers, strict=True):
            print(f"{label(source):<{width}}  {value:.6g}")
        return
    classes = module.hparams.classes
    results = top_k(answers, classes, min(args.top_k, len(classes)))
    if args.json:
        print(json.dumps([{**s, "top": r} for s, r in zip(sources, results, strict=True)], indent=2))
        return
    print(f"{header:<{width}}  {'class':<12} probability")
    for source, result in zip(sources, results, strict=True):
        for rank, guess in enumerate(result):
            print(f"{label(source) if rank == 0 else '':<{width}}  {guess['class']:<12} {guess['probability']:.4f}")
