"""train stage: fit the configured net with Lightning, tracked in MLflow, resumable after a kill.

The checkpoint directory persists across runs (not a DVC output): `last.ckpt` and `resume.json`
there let a rerun with the same config and data resume where a kill left off, in the same MLflow
run (reprovision.training.resume). `last.ckpt` is written every `trainer.checkpoint_every_s`
seconds at most, and at the final epoch; a kill loses at most that, plus the epoch under way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from reprovision.config import load_config
from reprovision.files import read_json
from reprovision.tasks import validation_note
from reprovision.training.crossval import train_and_cross_validate
from reprovision.training.paths import TrainPaths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", type=Path, help="resolved config")
    parser.add_argument("--data", required=True, type=Path, help="normalise stage's directory (stats.json)")
    parser.add_argument("--summary", required=True, type=Path, help="the split stage's summary.json")
    parser.add_argument(
        "--checkpoints", required=True, type=Path, help="best/last checkpoints, kept across runs for resuming"
    )
    parser.add_argument("--out", required=True, type=Path, help="model directory to write (model.ckpt)")
    parser.add_argument("--metrics", required=True, type=Path, help="summary metrics JSON")
    parser.add_argument("--curves", required=True, type=Path, help="per-epoch curves CSV")
    parser.add_argument("--timing", type=Path, help="where the stage's time went (JSON): start-up, compile, training")


def run(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)
    paths = TrainPaths(
        args.params, args.data, args.summary, args.checkpoints, args.out, args.metrics, args.curves, args.timing
    )
    summary = train_and_cross_validate(cfg, paths, started=args.started)
    if summary is not None:
        score = cfg.data.task_spec.monitor
        kept = f"refit for {summary['refit/epochs']:.0f} epochs" if "refit/epochs" in summary else "that epoch's model"
        print(
            f"train: best {score} {summary[score]:.4f} at epoch {summary['best_epoch']} "
            f"of {summary['epochs']}; {kept} -> {args.out}"
        )
        if note := validation_note(read_json(args.summary)):
            print(f"train: warning: {note}")
