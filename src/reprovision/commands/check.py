"""check: compare this run's metrics with a committed baseline, or another git revision's.

Exit 0 when no metric regressed beyond its tolerance, 1 when one did, 2 when the baseline is
missing or malformed. Prints a table; `--markdown FILE` appends it as Markdown (for a CI job
summary); `--update` rewrites the baseline from the current metrics, on purpose.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from reprovision.config import load_config
from reprovision.errors import StageFailed
from reprovision.files import write_json
from reprovision.regression import (
    DEFAULT_METRICS,
    compare,
    markdown_table,
    metrics_at_revision,
    read_baseline,
    read_metrics,
    text_table,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="resolved config (tolerances, baseline)")
    parser.add_argument(
        "--metrics",
        nargs="+",
        type=Path,
        default=[Path(p) for p in DEFAULT_METRICS],
        help="current metrics JSON files",
    )
    parser.add_argument("--baseline", type=Path, help="baseline JSON (default: check.baseline)")
    parser.add_argument("--rev", help="compare with the metrics committed at this git revision instead")
    parser.add_argument("--markdown", type=Path, help="append the table as Markdown (e.g. $GITHUB_STEP_SUMMARY)")
    parser.add_argument("--update", action="store_true", help="rewrite the baseline from the current metrics")


def run(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)
    current = read_metrics(args.metrics)
    baseline_path = args.baseline or Path(cfg.check.baseline)
    if args.update:
        write_json(baseline_path, {"metrics": current})
        print(f"check: baseline {baseline_path} rewritten from {', '.join(map(str, args.metrics))}")
        return
    if args.rev:
        baseline, against = metrics_at_revision(args.rev, args.metrics), f"git revision {args.rev}"
    else:
        baseline, against = read_baseline(baseline_path), str(baseline_path)
    rows = compare(baseline, current, getattr(cfg.check.tolerances, cfg.data.task))
    print(f"check against {against}:\n{text_table(rows)}")
    if args.markdown:
        with args.markdown.open("a") as f:
            f.write(markdown_table(rows, against))
    failed = [r.metric for r in rows if r.failed]
    if failed:
        raise StageFailed(f"{', '.join(failed)} regressed beyond tolerance against {against}")
