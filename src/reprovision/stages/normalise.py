"""normalise stage: fitted on the training split (image channel or table column statistics, a text
vocabulary), applied to every batch by the net's preprocessing; text is encoded here."""

from __future__ import annotations

import argparse
from pathlib import Path

from reprovision.config import load_config
from reprovision.data.normalise import normalise


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="resolved config")
    parser.add_argument("--split", required=True, type=Path, help="split directory")
    parser.add_argument("--out", required=True, type=Path, help="where stats.json (and text's encoded splits) go")


def run(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)
    inputs = normalise(args.split, args.out, cfg.data.num_words, cfg.data.max_length)["inputs"]
    if inputs["kind"] == "text":
        fitted = f"a vocabulary of {len(inputs['vocabulary'])} words (train split)"
    else:
        pairs = ", ".join(f"{m:.4f}/{s:.4f}" for m, s in zip(inputs["mean"], inputs["std"], strict=True))
        fitted = f"mean/std per {'channel' if inputs['kind'] == 'image' else 'column'} (train split) {pairs}"
    print(f"normalise: {fitted} -> {args.out}")
