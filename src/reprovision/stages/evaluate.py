"""evaluate stage: the best checkpoint on the test split; metrics, confusion, predictions."""

from __future__ import annotations

import argparse
from pathlib import Path

from reprovision import tracking
from reprovision.config import load_config
from reprovision.evaluation import evaluate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="resolved config")
    parser.add_argument("--model", required=True, type=Path, help="model directory (train)")
    parser.add_argument("--run", required=True, type=Path, help="the MLflow run train recorded (run.json)")
    parser.add_argument("--split", required=True, type=Path, help="split directory (its test split)")
    parser.add_argument("--data", required=True, type=Path, help="normalise stage's directory (stats.json)")
    parser.add_argument("--out", required=True, type=Path, help="metrics directory to write into")


def run(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)
    headline = evaluate(
        args.model,
        args.run,
        args.split,
        args.data,
        args.out,
        cfg.trainer.accelerator,
        cfg.evaluate.tta,
        cfg.data.eval_batch_size,
        tracking.tracking_uri(cfg),
        cfg.trainer.limit_batches,
        (cfg.seed, cfg.evaluate.baseline_rows) if cfg.evaluate.baseline else None,
    )
    print("evaluate: " + ", ".join(f"{k} {v:.4f}" for k, v in headline.items() if not k.startswith("baseline/")))
    if baselines := {k: v for k, v in headline.items() if k.startswith("baseline/")}:
        print("evaluate: " + ", ".join(f"{k} {v:.4f}" for k, v in baselines.items()))
