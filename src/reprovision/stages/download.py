"""download stage: fetch a dataset's raw files, verify their checksums, write a manifest."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from reprovision.config import load_config
from reprovision.data.sources import download


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="resolved config")
    parser.add_argument("--out", required=True, type=Path, help="raw data directory to write")


def run(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = load_config(args.params)
    manifest = download(cfg.data, args.out)
    total = sum(f["bytes"] for f in manifest["files"].values())
    print(
        f"download: {cfg.data.name}: {len(manifest['files'])} file(s), {total:,} bytes, "
        f"checksums verified -> {args.out}"
    )
