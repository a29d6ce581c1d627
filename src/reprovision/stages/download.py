"""download stage: fetch a dataset's raw files, verify their checksums, write a manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from reprovision.config import load_config
from reprovision.data.sources import source, verify_files
from reprovision.files import atomic_dir, write_json


def download(name: str, out_dir: Path) -> dict:
    """Fetch dataset `name` into `out_dir` (replaced whole, and only once verified)."""
    src = source(name)
    with atomic_dir(out_dir) as tmp:
        origin = src.fetch(tmp)
        manifest = {
            "dataset": name,
            "description": src.description,
            "origin": origin,
            "files": verify_files(tmp, src.files),
        }
        write_json(tmp / "manifest.json", manifest)
    return manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="resolved config")
    parser.add_argument("--out", required=True, type=Path, help="raw data directory to write")


def run(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)
    manifest = download(cfg.data.name, args.out)
    total = sum(f["bytes"] for f in manifest["files"].values())
    print(
        f"download: {cfg.data.name}: {len(manifest['files'])} file(s), {total:,} bytes, "
        f"checksums verified -> {args.out}"
    )
