"""sweep: hyperparameter search on the validation split (reprovision.training.sweep).

The best trial's whole config becomes `conf/experiment/<search.name>.yaml`, so
`dvc exp run -S experiment=<search.name>` reproduces its validation accuracy.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from reprovision.config import load_config
from reprovision.errors import BadInput
from reprovision.training.sweep import run_sweep


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", type=Path, help="resolved config (its search section)")
    parser.add_argument(
        "--data", default="data/normalised", type=Path, help="normalise stage's output (dvc repro normalise)"
    )
    parser.add_argument("--summary", default="data/split/summary.json", type=Path, help="split summary")
    parser.add_argument("--conf", default="conf", type=Path, help="where conf/experiment/<name>.yaml is written")


def run(args: argparse.Namespace) -> None:
    load_config(args.params)  # one-line errors for a bad search section, before any work
    if not (args.data / "stats.json").is_file():
        raise BadInput(f"{args.data} has no stats.json: run `dvc repro normalise` first")
    with tempfile.TemporaryDirectory(prefix="sweep-") as work:
        result = run_sweep(args.params, args.data, args.summary, args.conf, Path(work))
    best, score = result["best"], result["score"]
    print(f"sweep: best {score} {best[score]:.4f} (trial {best['trial']}) -> {result['experiment']}")
