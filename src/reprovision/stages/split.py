"""split stage: stratified, seeded train/val/test split; the test set is never tuned on."""

from __future__ import annotations

import argparse
from pathlib import Path

from reprovision.config import load_config
from reprovision.data.splitting import split


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="resolved config")
    parser.add_argument("--raw", required=True, type=Path, help="raw data directory (download)")
    parser.add_argument("--out", required=True, type=Path, help="split directory to write")


def run(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)
    summary = split(cfg.data, args.raw, args.out, cfg.seed)
    sizes = ", ".join(f"{s} {n}" for s, n in summary["sizes"].items())
    print(f"split: {cfg.data.name}: {sizes} -> {args.out}")
