"""The run's report: one self-contained HTML page (figures embedded) of the summary and curves,
then what the task and the kind of input call for: confusion and mistakes for a classification
(images, documents or rows, each explained), predictions against the truth for a regression."""

from __future__ import annotations

import html
import math
from pathlib import Path

from reprovision import plots
from reprovision.config import Config
from reprovision.files import read_csv, read_json
from reprovision.models.predictor import load_predictor
from reprovision.reporting import images, tables, text
from reprovision.reporting.page import RunFiles, figure, page, section
from reprovision.tasks import validation_note

__all__ = ["render_report"]

# The sections after the summary and curves, per (task, kind of input).
SECTIONS = {
    ("classification", "image"): images.sections,
    ("classification", "text"): text.sections,
    ("classification", "table"): tables.classification_sections,
}
NOUNS = {"image": "images", "text": "documents", "table": "rows"}


# The evaluate stage's one row per test example, per task (evaluation.write_classification, write_regression).
def render_report(
    cfg: Config, metrics_dir: Path, split_dir: Path, model_dir: Path, data_dir: Path | None = None
) -> str:
    """The report page as a string. `data_dir`, the normalise stage's output, is read for text only: the
    vocabulary ids the model read, which its word attributions explain."""
    task, kind = cfg.data.task_spec, cfg.data.kind
    run = RunFiles(
        cfg=cfg,
        model=load_predictor(model_dir / "model.ckpt"),
        predictions=read_csv(metrics_dir / "evaluation" / f"{task.rows}.csv"),
        metrics_dir=metrics_dir,
        split_dir=split_dir,
        data_dir=data_dir,
    )
    curves = [{k: _number(v) for k, v in row.items()} for row in read_csv(metrics_dir / "curves.csv")]
    split = read_json(split_dir / "summary.json")
    score = plots.SCORE_TITLES.get(task.score, task.score)
    parts = [
        section("Summary", summary_table(cfg, metrics_dir, split, f"test {NOUNS[kind]}", len(run.predictions))),
        section(
            f"Loss and {score} per epoch",
            figure(plots.curves_figure(curves, task.score), "train and validation curves"),
        ),
        *SECTIONS.get((task.name, kind), tables.regression_sections)(run),
    ]
    return page(f"{cfg.data.name} · {cfg.model.name} · {cfg.optim.name}", parts)


def _number(v: str) -> float:
    return float(v) if v not in ("", None) else math.nan  # a column a row has no value in (train/lr)


def summary_rows(cfg: Config, metrics_dir: Path, split: dict, noun: str, test_rows: int) -> list[tuple[str, object]]:
    # No MLflow run id: the page is a DVC output, a function of config, data and code; the report
    # is logged to its run, and the MLflow UI shows it there.
    train, test = read_json(metrics_dir / "train.json"), read_json(metrics_dir / "eval.json")
    task = cfg.data.task_spec
    return [
        ("dataset", cfg.data.name),
        ("task", task.name),
        ("model", cfg.model.name),
        ("optimizer", cfg.optim.name),
        ("learning rate", f"{cfg.optim.lr:g}"),
        ("batch size", cfg.data.batch_size),
        ("epochs", train["epochs"]),
        (f"best epoch ({task.monitor})", train["best_epoch"]),
        (f"{task.monitor} (best epoch)", f"{train[task.monitor]:.4f}"),
        *(
            [
                (
                    "model evaluated",
                    f"refit on train + val: {train['refit/epochs']:.0f} epochs, {train['refit/examples']:.0f} examples",
                )
            ]
            if "refit/epochs" in train
            else []
        ),
        *((name, f"{test[name]:.4f}") for name in task.test_metrics if name in test),
        *baseline_rows(test, task.test_metrics),
        (noun, test_rows),
        ("validation split", validation_note(split) or f"{split['sizes']['val']} examples"),
    ]


BASELINES = {"logistic": "logistic regression", "majority": "the majority class", "linear": "linear regression",
             "mean": "the training mean"}  # fmt: skip


def baseline_rows(test: dict, metrics: tuple[str, ...]) -> list[tuple[str, str]]:
    """The baselines' test metrics (evaluate's baseline/*) beside the net's, and its margin over the best."""
    rows = []
    for key, name in BASELINES.items():
        shown = [f"{m} {test[f'baseline/{key}/{m}']:.4f}" for m in metrics if f"baseline/{key}/{m}" in test]
        if shown:
            rows.append((f"baseline: {name}", ", ".join(shown)))
    rows += [(f"margin over the best baseline ({k.removeprefix('baseline/margin/')})", f"{v:+.4f}")
             for k, v in test.items() if k.startswith("baseline/margin/")]  # fmt: skip
    return rows


def summary_table(cfg: Config, metrics_dir: Path, split: dict, noun: str, test_rows: int) -> str:
    rows = summary_rows(cfg, metrics_dir, split, noun, test_rows)
    return (
        "<table>"
        + "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
        + "</table>"
    )
