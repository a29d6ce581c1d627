"""report stage: one self-contained HTML page (images embedded) logged to the MLflow run."""

from __future__ import annotations

import argparse
from pathlib import Path

from reprovision import tracking
from reprovision.config import load_config
from reprovision.files import atomic_dir
from reprovision.reporting import render_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="resolved config")
    parser.add_argument("--metrics", required=True, type=Path, help="metrics directory")
    parser.add_argument("--split", required=True, type=Path, help="split directory (raw images, rows, documents)")
    parser.add_argument(
        "--data", type=Path, default=None, help="normalise stage's output (text: the vocabulary ids the model read)"
    )
    parser.add_argument("--model", required=True, type=Path, help="model directory (model.ckpt)")
    parser.add_argument("--run", required=True, type=Path, help="the MLflow run train recorded (run.json)")
    parser.add_argument("--out", required=True, type=Path, help="report directory to write")


def run(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)
    page = render_report(cfg, args.metrics, args.split, args.model, args.data)
    with atomic_dir(args.out) as tmp:
        (tmp / "index.html").write_text(page)
    run = tracking.recorded_run(args.run, "report", tracking.tracking_uri(cfg))
    if run is not None:
        run.record_numerics("report")
        run.log_artifacts(args.out, "report")
    print(f"report: {args.out / 'index.html'}")
