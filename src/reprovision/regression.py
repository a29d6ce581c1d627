"""The regression check's math: metrics compared with a baseline under per-metric tolerances,
the baseline and metrics files read, the verdict as a text or Markdown table."""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

from reprovision.config import Tolerance
from reprovision.errors import BadInput, StageFailed

DEFAULT_METRICS = ("metrics/eval.json", "metrics/train.json")


@dataclass(frozen=True)
class Row:
    metric: str
    baseline: float | None
    now: float | None
    allowed: float
    verdict: str  # better | same | within tolerance | REGRESSED | MISSING | new

    @property
    def failed(self) -> bool:
        return self.verdict in ("REGRESSED", "MISSING")


def compare(baseline: dict[str, float], current: dict[str, float], tolerances: dict[str, Tolerance]) -> list[Row]:
    """One row per metric with a tolerance; the math of the check, no I/O."""
    rows = []
    for metric, tol in tolerances.items():
        base, now = baseline.get(metric), current.get(metric)
        allowed = max(tol.absolute or 0.0, (tol.relative or 0.0) * abs(base or 0.0))
        if now is None:
            verdict = "MISSING"
        elif base is None:
            verdict = "new"
        else:
            gain = now - base if tol.direction == "higher" else base - now
            if math.isnan(gain) or gain < -allowed:
                verdict = "REGRESSED"
            else:
                verdict = "better" if gain > 0 else "same" if gain == 0 else "within tolerance"
        rows.append(Row(metric, base, now, allowed, verdict))
    return rows


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _cells(row: Row) -> list[str]:
    delta = "-" if row.baseline is None or row.now is None else f"{row.now - row.baseline:+.4f}"
    return [row.metric, _fmt(row.baseline), _fmt(row.now), delta, f"{row.allowed:.4f}", row.verdict]


HEADER = ["metric", "baseline", "now", "delta", "tolerance", "verdict"]


def text_table(rows: list[Row]) -> str:
    table = [HEADER, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in table)


def markdown_table(rows: list[Row], against: str) -> str:
    status = "FAILED" if any(r.failed for r in rows) else "passed"
    lines = [
        f"### reprovision check {status} (against {against})",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _numbers(data: object, source: str) -> dict[str, float]:
    if not isinstance(data, dict):
        raise BadInput(f"{source}: expected a JSON object of metric names to numbers")
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def read_metrics(paths: list[Path]) -> dict[str, float]:
    merged: dict[str, float] = {}
    for path in paths:
        if not path.is_file():
            raise StageFailed(f"{path} is missing: run the pipeline (dvc repro) before the check")
        merged.update(_numbers(json.loads(path.read_text()), str(path)))
    return merged


def read_baseline(path: Path) -> dict[str, float]:
    if not path.is_file():
        raise BadInput(f"baseline {path} not found: create it from a good run with `reprovision check --update`")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BadInput(f"baseline {path} is not valid JSON ({e}); fix it or rewrite it with --update") from None
    metrics = _numbers(data.get("metrics") if isinstance(data, dict) else None, f"baseline {path}: 'metrics'")
    if not metrics:
        raise BadInput(f"baseline {path} holds no metrics; rewrite it with `reprovision check --update`")
    return metrics


def commit_of(rev: str) -> str:
    """The commit a revision names. `--end-of-options`: a revision is never read as an option
    (`--output=FILE` would have git write that file)."""
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise BadInput(f"--rev {rev!r} names no commit of this repository; pass a commit, branch or tag")
    return proc.stdout.strip()


def metrics_at_revision(rev: str, paths: list[Path]) -> dict[str, float]:
    """The metrics files as committed at a git revision (they are git-tracked DVC metrics)."""
    merged: dict[str, float] = {}
    commit = commit_of(rev)
    for path in paths:
        show = ["git", "show", "--end-of-options", f"{commit}:{path.as_posix()}"]
        proc = subprocess.run(show, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BadInput(f"no {path} at git revision {rev!r}: {proc.stderr.strip().splitlines()[-1]}")
        try:
            merged.update(_numbers(json.loads(proc.stdout), f"{rev}:{path}"))
        except json.JSONDecodeError:
            raise BadInput(f"{rev}:{path} is not valid JSON") from None
    return merged
