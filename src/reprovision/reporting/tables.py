"""Table sections: a classification's misclassified rows; a regression's predictions against
the truth and its largest errors with their feature values; for both, the features that moved
the predictions (integrated gradients from the training split's mean row)."""

from __future__ import annotations

import numpy as np
import torch

from reprovision import inspection, plots, report_plots
from reprovision.reporting.confusion import confusion_sections, misclassified
from reprovision.reporting.page import RunFiles, Safe, escape, figure, section, shade, table

CHARTED = 20  # features in the attribution chart, the largest first; the table lists them too


def features(run: RunFiles) -> list[str]:
    return list(run.model.hparams.inputs["features"])


def value(x: float) -> str:
    return f"{x:.4g}"


def classification_sections(run: RunFiles) -> list[str]:
    """Confusion, then the most confident mistakes with the row's raw feature values."""
    names = features(run)
    mistakes = misclassified(run.predictions, run.cfg.report.gallery_size)
    rows = [
        [
            p["index"],
            p["actual"],
            p["predicted"],
            f"{float(p['confidence']):.0%}",
            *map(value, run.test_x[int(p["index"])]),
        ]
        for p in mistakes
    ]
    n_wrong = sum(p["actual"] != p["predicted"] for p in run.predictions)
    shown = table(["test row", "actual", "predicted", "confidence", *names], rows, "mistakes")
    return [
        *confusion_sections(run, noun="rows"),
        section(
            f"Misclassified test rows ({n_wrong} of {len(run.predictions)}; most confident first)",
            shown if rows else "<p>No misclassified test rows.</p>",
        ),
        section("Features that moved the predictions", attributions_html(run, mistakes, "logit")),
    ]


def largest_errors(predictions: list[dict[str, str]], limit: int) -> list[dict[str, str]]:
    """The rows predicted furthest from the truth, the largest first (ties by test index)."""
    ranked = sorted(predictions, key=lambda p: (-abs(float(p["error"])), int(p["index"])))
    return ranked[:limit]


def regression_sections(run: RunFiles) -> list[str]:
    """Predicted against actual, the largest errors, and (tables) the features behind them."""
    target = run.summary.get("target") or "target"
    actual = np.array([float(p["actual"]) for p in run.predictions])
    predicted = np.array([float(p["predicted"]) for p in run.predictions])
    fig = plots.predicted_vs_actual_figure(actual, predicted, target)
    worst = largest_errors(run.predictions, run.cfg.report.gallery_size)
    tabular = run.model.hparams.inputs["kind"] == "table"
    names = features(run) if tabular else []
    rows = [
        [
            p["index"],
            p["actual"],
            p["predicted"],
            p["error"],
            *(map(value, run.test_x[int(p["index"])]) if names else []),
        ]
        for p in worst
    ]
    header = ["test row", f"actual {target}", "predicted", "error", *names]
    parts = [
        section(f"Predicted against actual {target} (test split)", figure(fig, "predicted vs actual and residuals")),
        section(f"Largest errors ({len(worst)} of {len(run.predictions)} test rows)", table(header, rows, "errors")),
    ]
    if tabular:
        parts.append(section("Features that moved the predictions", attributions_html(run, worst, target)))
    return parts


EXPLAINED = """<p>Integrated gradients from the training split's mean row (predicted: {mean_row}): how
far each feature moved a prediction away from the mean row's, in the target's units (a row's
attributions add up to that difference). The chart ranks the features by their mean size over the
test rows; the table below gives the largest errors' own, red where the feature raised the
prediction, blue where it lowered it.</p>
"""
EXPLAINED_CLASSES = """<p>Integrated gradients from the training split's mean row (predicted: {mean_row}): how
far each feature moved the logit of the class a row was predicted as, away from the mean row's logit
for that class (a row's attributions add up to that difference). The chart ranks the features by
their mean size over the test rows; the table below gives the misclassified rows' own, red where the
feature pushed towards the wrong class, blue where it pushed away from it.</p>
"""


def attributions_html(run: RunFiles, listed: list[dict[str, str]], unit: str) -> str:
    """The attribution chart and ranking over every test row, then `listed` rows' own: of the
    predicted value (regression, in `unit`), or of the predicted class's logit (classification)."""
    names, classes = features(run), run.model.hparams.classes
    regression = run.model.task.name == "regression"
    rows = run.model.preprocess(torch.from_numpy(run.test_x[: len(run.predictions)]).float())
    predicted = None if regression else torch.tensor([classes.index(p["predicted"]) for p in run.predictions])
    attributions = inspection.feature_attributions(run.model, rows, predicted).numpy()
    mean_size = np.abs(attributions).mean(axis=0)
    ranked = np.argsort(-mean_size, kind="stable")[:CHARTED]
    chart = report_plots.feature_attribution_figure([names[i] for i in ranked], mean_size[ranked], unit)
    ranking = table(
        ["rank", "feature", "mean |attribution|"],
        [[n + 1, names[i], value(mean_size[i])] for n, i in enumerate(ranked)],
        "ranking",
    )
    signed = attributions[[int(p["index"]) for p in listed]]
    limit = float(np.abs(signed).max(initial=0.0))
    column = "error" if regression else "predicted"
    cells = [
        [p["index"], p[column], *(Safe(f'<span style="{shade(a, limit)}">{a:+.3g}</span>') for a in row)]
        for p, row in zip(listed, signed, strict=True)
    ]
    by_row = table(["test row", column, *names], cells, "row-attributions")
    title = f"mean |attribution| per feature ({len(ranked)} of {len(names)})"
    with torch.no_grad():
        mean_out = run.model(torch.zeros_like(rows[:1]))[0]
    if regression:
        explained = EXPLAINED.format(mean_row=escape(f"{float(mean_out):.4g} {unit}"))
        heading = "The largest errors"
    else:
        explained = EXPLAINED_CLASSES.format(mean_row=escape(classes[int(mean_out.argmax())]))
        heading = "The misclassified rows above"
    listed_html = f"<h3>{heading}</h3>\n{by_row}" if listed else ""
    return f'{explained}<div class="row">{figure(chart, title)}{ranking}</div>\n{listed_html}'
