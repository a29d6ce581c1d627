"""normalise stage: per-channel statistics from the training split, applied to every split."""

from __future__ import annotations

import argparse
from pathlib import Path

from reprovision.data.normalise import normalise


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", required=True, type=Path, help="split directory")
    parser.add_argument("--out", required=True, type=Path, help="normalised directory to write")


def run(args: argparse.Namespace) -> None:
    stats = normalise(args.split, args.out)
    fmt = ", ".join(f"{m:.4f}/{s:.4f}" for m, s in zip(stats["mean"], stats["std"], strict=True))
    print(f"normalise: mean/std per channel (train split) {fmt} -> {args.out}")
