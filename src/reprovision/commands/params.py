"""params: compose conf/ into params.yaml, as `dvc exp run` does (`dvc repro` does not)."""

from __future__ import annotations

import argparse
from pathlib import Path

from reprovision.config import write_params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=mlp optim.lr=0.01")
    parser.add_argument("--conf", default="conf", type=Path, help="Hydra config directory")
    parser.add_argument("--out", default="params.yaml", type=Path, help="file to write")


def run(args: argparse.Namespace) -> None:
    write_params(args.out, args.conf, args.overrides)
    print(f"params: composed {args.conf}/ -> {args.out}")
