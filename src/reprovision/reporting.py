"""The run's report: one self-contained HTML page (images embedded) of curves, confusion,
mistakes and what the network looks at."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import torch

from reprovision import inspection, plots
from reprovision.config import Config
from reprovision.files import load_arrays, read_csv, read_json
from reprovision.models.classifier import load_classifier


def misclassified(predictions: list[dict[str, str]], limit: int) -> list[dict[str, str]]:
    """Wrong predictions, the most confident first (ties by test index, so the order is fixed)."""
    wrong = [p for p in predictions if p["actual"] != p["predicted"]]
    wrong.sort(key=lambda p: (-float(p["confidence"]), int(p["index"])))
    return wrong[:limit]


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _figure(fig, alt: str) -> str:
    return _img(plots.png_bytes(fig), alt)


def confused_pairs_html(matrix: np.ndarray, classes: list[str], predictions, images, cfg: Config) -> str:
    """The most confused (actual, predicted) pairs, each with its most confident mistakes."""
    parts = []
    for actual, predicted, count in inspection.top_confused_pairs(matrix, cfg.report.confused_pairs):
        pair = [p for p in predictions if p["actual"] == classes[actual] and p["predicted"] == classes[predicted]]
        shown = misclassified(pair, 6)
        strip = plots.image_strip(
            [images[int(p["index"])] for p in shown],
            [f"#{p['index']} {float(p['confidence']):.0%}" for p in shown],
        )
        title = f"{classes[actual]} taken for {classes[predicted]}: {count} test image(s)"
        parts.append(f"<h3>{html.escape(title)}</h3>{_figure(strip, title)}")
    return "\n".join(parts) or "<p>No test image was misclassified.</p>"


def inspection_html(cfg: Config, checkpoint: Path, images: np.ndarray, predictions, classes: list[str]) -> str:
    """Saliency, Grad-CAM and occlusion maps for a seeded choice of correct and wrong test images,
    each explaining the class the model predicted; and the first conv layer's filters."""
    r = cfg.report
    module = load_classifier(checkpoint)
    index = {c: i for i, c in enumerate(classes)}
    actual = np.array([index[p["actual"]] for p in predictions])
    predicted = np.array([index[p["predicted"]] for p in predictions])
    parts = []
    wanted = {"saliency": r.saliency, "Grad-CAM": r.grad_cam, "occlusion": r.occlusion}
    if r.examples and any(wanted.values()):
        window, stride = inspection.occlusion_window(images.shape[-1], r.occlusion_window)
        for kind, chosen in inspection.select_examples(actual, predicted, r.examples, cfg.seed).items():
            if not len(chosen):
                continue
            x = module.preprocess(torch.from_numpy(images[chosen]))
            target = torch.from_numpy(predicted[chosen])
            maps = {}
            if r.saliency:
                maps["saliency"] = inspection.saliency(module, x, target).numpy()
            if r.grad_cam and (cam := inspection.grad_cam(module, x, target)) is not None:
                maps["Grad-CAM"] = cam.numpy()
            if r.occlusion:
                maps["occlusion"] = inspection.occlusion(module, x, target, window, stride).numpy()
            titles = [f"#{i}: {classes[actual[i]]} → {classes[predicted[i]]}" for i in chosen]
            parts.append(f"<h3>{kind} predictions</h3>")
            parts.append(_figure(plots.inspection_figure(images[chosen], titles, maps), f"{kind} maps"))
        if r.grad_cam and inspection.last_conv(module) is None:
            parts.append(f"<p>No Grad-CAM: {html.escape(cfg.model.name)} has no conv layer.</p>")
    if r.filters:
        weights = inspection.first_conv_filters(module)
        if weights is None:
            parts.append(f"<p>No filters: {html.escape(cfg.model.name)} has no conv layer.</p>")
        else:
            parts.append(
                f"<h3>First conv layer: {len(weights)} filters of {weights.shape[-1]}x{weights.shape[-1]}</h3>"
            )
            parts.append(_figure(plots.filters_figure(weights), "first conv layer filters"))
    return "\n".join(parts)


def render_report(cfg: Config, metrics_dir: Path, split_dir: Path, model_dir: Path) -> str:
    """The report page as a string: summary, curves, confusion analysis, galleries, inspection."""
    confusion = read_json(metrics_dir / "confusion_matrix.json")
    classes, matrix = confusion["classes"], np.array(confusion["matrix"])
    curves = [{k: float(v) for k, v in row.items()} for row in read_csv(metrics_dir / "curves.csv")]
    predictions = read_csv(metrics_dir / "predictions.csv")
    test_images = load_arrays(split_dir / "test.npz")["x"]
    summary = summary_rows(cfg, metrics_dir, len(predictions))
    rows = "\n".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in summary)
    n_wrong = sum(p["actual"] != p["predicted"] for p in predictions)
    sections = {
        "rows": rows,
        "curves": _figure(plots.curves_figure(curves), "train and validation curves"),
        "counts": _figure(plots.confusion_figure(matrix, classes), "confusion matrix, counts"),
        "rates": _figure(plots.confusion_figure(matrix, classes, normalise=True), "confusion matrix, row-normalised"),
        "per_class": _figure(plots.per_class_accuracy_figure(matrix, classes), "per-class accuracy"),
        "pairs": confused_pairs_html(matrix, classes, predictions, test_images, cfg),
        "wrong": f"{n_wrong} of {len(predictions)}",
        "gallery": gallery_html(predictions, test_images, classes, cfg.report.gallery_size),
        "inspection": inspection_html(cfg, model_dir / "model.ckpt", test_images, predictions, classes),
    }
    return PAGE.format(title=html.escape(f"{cfg.data.name} · {cfg.model.name} · {cfg.optim.name}"), **sections)


def summary_rows(cfg: Config, metrics_dir: Path, test_images: int) -> list[tuple[str, object]]:
    # No MLflow run id: the page is a DVC output, a function of config, data and code; the report
    # is logged to its run, and the MLflow UI shows it there.
    train, test = read_json(metrics_dir / "train.json"), read_json(metrics_dir / "eval.json")
    return [
        ("dataset", cfg.data.name),
        ("model", cfg.model.name),
        ("optimizer", cfg.optim.name),
        ("learning rate", f"{cfg.optim.lr:g}"),
        ("batch size", cfg.data.batch_size),
        ("epochs", train["epochs"]),
        ("best epoch (val/acc)", train["best_epoch"]),
        ("val/acc (best epoch)", f"{train['val/acc']:.4f}"),
        ("test/acc", f"{test['test/acc']:.4f}"),
        ("test/f1_macro", f"{test['test/f1_macro']:.4f}"),
        ("test/loss", f"{test['test/loss']:.4f}"),
        ("test images", test_images),
    ]


def gallery_html(predictions, images: np.ndarray, classes: list[str], size: int) -> str:
    """The most confident mistakes, each with its class probabilities."""
    gallery = []
    index = {c: i for i, c in enumerate(classes)}
    for p in misclassified(predictions, size):
        i = int(p["index"])
        probs = np.array([float(p[f"p_{c}"]) for c in classes])
        fig = plots.prediction_figure(images[i], probs, classes, index[p["actual"]], index[p["predicted"]])
        caption = f"test #{i}: actual {p['actual']}, predicted {p['predicted']} ({float(p['confidence']):.0%})"
        gallery.append(f"<figure>{_figure(fig, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>")
    return "\n".join(gallery) or "<p>No misclassified test images.</p>"


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>reprovision report: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; }} th, td {{ padding: .25rem .8rem; border-bottom: 1px solid #ddd; }}
th {{ text-align: left; font-weight: 600; }} img {{ max-width: 100%; }}
.gallery, .row {{ display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }}
.row img {{ max-width: 48%; }}
figure {{ margin: 0; }} figcaption {{ font-size: .8rem; color: #555; }}
</style></head>
<body>
<h1>{title}</h1>
<h2>Summary</h2>
<table>{rows}</table>
<h2>Loss and accuracy per epoch</h2>
{curves}
<h2>Confusion matrix (test split): counts and rates of each actual class</h2>
<div class="row">
{counts}
{rates}
</div>
<h2>Accuracy of each class</h2>
{per_class}
<h2>Most confused pairs</h2>
{pairs}
<h2>Misclassified test images ({wrong}; most confident first)</h2>
<div class="gallery">
{gallery}
</div>
<h2>What the network looks at</h2>
<p>Each map explains the predicted class. Saliency: how strongly each pixel moves the class score.
Grad-CAM: where the last conv layer finds evidence for the class. Occlusion: how much the class
probability drops when a square around the pixel is hidden (red: the class needs it).</p>
{inspection}
</body></html>
"""
