"""check: the comparison math, and the exit statuses CI relies on."""

from __future__ import annotations

import json
import math

import pytest

from reprovision.cli import main
from reprovision.config import Tolerance
from reprovision.regression import compare, markdown_table

HIGHER = Tolerance(direction="higher", absolute=0.01)
LOWER = Tolerance(direction="lower", absolute=0.0, relative=0.1)


@pytest.mark.parametrize(
    ("base", "now", "tol", "verdict"),
    [
        (0.90, 0.90, HIGHER, "same"),
        (0.90, 0.95, HIGHER, "better"),
        (0.90, 0.895, HIGHER, "within tolerance"),
        (0.90, 0.88, HIGHER, "REGRESSED"),
        (0.50, 0.54, LOWER, "within tolerance"),  # relative: 10% of 0.5
        (0.50, 0.56, LOWER, "REGRESSED"),
        (0.50, 0.40, LOWER, "better"),
        (0.90, math.nan, HIGHER, "REGRESSED"),  # a diverged run never passes
    ],
)
def test_verdicts(base, now, tol, verdict):
    (row,) = compare({"m": base}, {"m": now}, {"m": tol})
    assert row.verdict == verdict
    assert row.failed == (verdict == "REGRESSED")


def test_missing_metric_fails_and_new_metric_passes():
    rows = compare({"a": 1.0}, {"b": 1.0}, {"a": HIGHER, "b": HIGHER})
    assert [(r.metric, r.verdict, r.failed) for r in rows] == [("a", "MISSING", True), ("b", "new", False)]


def test_markdown_names_the_outcome():
    rows = compare({"test/acc": 0.9}, {"test/acc": 0.5}, {"test/acc": HIGHER})
    md = markdown_table(rows, "baselines/x.json")
    assert md.startswith("### reprovision check FAILED (against baselines/x.json)")
    assert "| test/acc | 0.9000 | 0.5000 | -0.4000 | 0.0100 | REGRESSED |" in md


@pytest.fixture
def metrics(tmp_path, root, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "eval.json").write_text(
        json.dumps({"test/acc": 0.9, "test/f1_macro": 0.9, "test/loss": 0.3})
    )
    (tmp_path / "metrics" / "train.json").write_text(json.dumps({"val/acc": 0.9}))
    (tmp_path / "params.yaml").write_text((root / "params.yaml").read_text())
    return tmp_path


def test_update_then_pass(metrics):
    assert main(["check", "--update", "--baseline", "b.json"]) == 0
    assert main(["check", "--baseline", "b.json"]) == 0


@pytest.mark.parametrize("content", [None, "{not json", json.dumps({"metrics": {}}), json.dumps([1, 2])])
def test_missing_or_malformed_baseline_exits_2(metrics, content, capsys):
    if content is not None:
        (metrics / "b.json").write_text(content)
    assert main(["check", "--baseline", "b.json"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reprovision check: error: baseline b.json") and "\n" not in err


def test_a_regression_beyond_tolerance_exits_1_with_one_line_naming_the_metric(metrics, capsys):
    # The baseline's test/acc beats this run's 0.9 by more than the 0.01 allowed; the rest hold.
    baseline = {"test/acc": 0.95, "test/f1_macro": 0.9, "test/loss": 0.3, "val/acc": 0.9}
    (metrics / "b.json").write_text(json.dumps({"metrics": baseline}))
    argv = ["check", "--params", "params.yaml", "--metrics", "metrics/eval.json", "metrics/train.json"]
    assert main([*argv, "--baseline", "b.json"]) == 1
    out, err = capsys.readouterr()
    assert err == "reprovision check: failed: test/acc regressed beyond tolerance against b.json\n"
    verdicts = {line.split()[0]: line.split()[-1] for line in out.splitlines()[2:]}
    assert verdicts == {"test/acc": "REGRESSED", "test/f1_macro": "same", "test/loss": "same", "val/acc": "same"}
