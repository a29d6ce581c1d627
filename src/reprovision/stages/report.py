"""report stage: one self-contained HTML page (images embedded) logged to the MLflow run."""

from __future__ import annotations

import argparse
import base64
import csv
import html
from pathlib import Path

import numpy as np

from reprovision import plots, tracking
from reprovision.config import Config, load_config
from reprovision.files import atomic_dir, load_arrays, read_json


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def misclassified(predictions: list[dict[str, str]], limit: int) -> list[dict[str, str]]:
    """Wrong predictions, the most confident first (ties by test index, so the order is fixed)."""
    wrong = [p for p in predictions if p["actual"] != p["predicted"]]
    wrong.sort(key=lambda p: (-float(p["confidence"]), int(p["index"])))
    return wrong[:limit]


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def render_report(cfg: Config, metrics_dir: Path, split_dir: Path, run_info: dict) -> str:
    """The report page as a string: summary, curves, confusion heatmap, misclassified gallery."""
    eval_metrics = read_json(metrics_dir / "eval.json")
    train_metrics = read_json(metrics_dir / "train.json")
    confusion = read_json(metrics_dir / "confusion_matrix.json")
    classes = confusion["classes"]
    curves = [{k: float(v) for k, v in row.items()} for row in read_csv(metrics_dir / "curves.csv")]
    predictions = read_csv(metrics_dir / "predictions.csv")
    test_images = load_arrays(split_dir / "test.npz")["x"]

    summary = [
        ("dataset", cfg.data.name),
        ("model", cfg.model.name),
        ("optimizer", cfg.optim.name),
        ("learning rate", f"{cfg.optim.lr:g}"),
        ("batch size", cfg.data.batch_size),
        ("epochs", train_metrics["epochs"]),
        ("best epoch (val/acc)", train_metrics["best_epoch"]),
        ("val/acc (best epoch)", f"{train_metrics['val/acc']:.4f}"),
        ("test/acc", f"{eval_metrics['test/acc']:.4f}"),
        ("test/f1_macro", f"{eval_metrics['test/f1_macro']:.4f}"),
        ("test/loss", f"{eval_metrics['test/loss']:.4f}"),
        ("test images", len(predictions)),
        ("MLflow run", run_info["run_id"]),
    ]
    rows = "\n".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in summary)

    gallery = []
    index = {c: i for i, c in enumerate(classes)}
    for p in misclassified(predictions, cfg.report.gallery_size):
        i = int(p["index"])
        probs = np.array([float(p[f"p_{c}"]) for c in classes])
        fig = plots.prediction_figure(test_images[i], probs, classes, index[p["actual"]], index[p["predicted"]])
        caption = f"test #{i}: actual {p['actual']}, predicted {p['predicted']} ({float(p['confidence']):.0%})"
        gallery.append(
            f"<figure>{_img(plots.png_bytes(fig), caption)}<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    n_wrong = sum(p["actual"] != p["predicted"] for p in predictions)
    gallery_html = "\n".join(gallery) or "<p>No misclassified test images.</p>"

    title = html.escape(f"{cfg.data.name} · {cfg.model.name} · {cfg.optim.name}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>reprovision report: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; }} th, td {{ padding: .25rem .8rem; border-bottom: 1px solid #ddd; }}
th {{ text-align: left; font-weight: 600; }} img {{ max-width: 100%; }}
.gallery {{ display: flex; flex-wrap: wrap; gap: 1rem; }}
figure {{ margin: 0; }} figcaption {{ font-size: .8rem; color: #555; }}
</style></head>
<body>
<h1>{title}</h1>
<h2>Summary</h2>
<table>{rows}</table>
<h2>Loss and accuracy per epoch</h2>
{_img(plots.png_bytes(plots.curves_figure(curves)), "train and validation curves")}
<h2>Confusion matrix (test split)</h2>
{_img(plots.png_bytes(plots.confusion_figure(np.array(confusion["matrix"]), classes)), "confusion matrix")}
<h2>Misclassified test images ({n_wrong} of {len(predictions)}; most confident first)</h2>
<div class="gallery">
{gallery_html}
</div>
</body></html>
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="resolved config")
    parser.add_argument("--metrics", required=True, type=Path, help="metrics directory")
    parser.add_argument("--split", required=True, type=Path, help="split directory (raw images)")
    parser.add_argument("--model", required=True, type=Path, help="model directory (run.json)")
    parser.add_argument("--out", required=True, type=Path, help="report directory to write")


def run(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)
    run_info = read_json(args.model / "run.json")
    page = render_report(cfg, args.metrics, args.split, run_info)
    with atomic_dir(args.out) as tmp:
        (tmp / "index.html").write_text(page)
    tracking.PipelineRun(run_info).log_artifacts(args.out, "report")
    print(f"report: {args.out / 'index.html'}")
