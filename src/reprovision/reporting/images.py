"""Image classification's sections: example strips of the confused pairs, the most confident
mistakes, and what the network looks at (saliency, Grad-CAM, occlusion, first-layer filters)."""

from __future__ import annotations

import html

import numpy as np
import torch

from reprovision import inspection, plots
from reprovision.config import Config
from reprovision.models.predictor import Predictor
from reprovision.reporting.confusion import confusion_sections, misclassified
from reprovision.reporting.page import RunFiles, figure, section


def sections(run: RunFiles) -> list[str]:
    images, predictions, classes = run.test_x, run.predictions, run.classes

    def strip(actual: int, predicted: int, count: int) -> str:
        pair = [p for p in predictions if p["actual"] == classes[actual] and p["predicted"] == classes[predicted]]
        shown = misclassified(pair, 6)
        fig = plots.image_strip(
            [images[int(p["index"])] for p in shown],
            [f"#{p['index']} {float(p['confidence']):.0%}" for p in shown],
        )
        title = f"{classes[actual]} taken for {classes[predicted]}: {count} test image(s)"
        return f"<h3>{html.escape(title)}</h3>{figure(fig, title)}"

    n_wrong = sum(p["actual"] != p["predicted"] for p in predictions)
    gallery = gallery_html(predictions, images, classes, run.cfg.report.gallery_size)
    return [
        *confusion_sections(run, strip, "images"),
        section(
            f"Misclassified test images ({n_wrong} of {len(predictions)}; most confident first)",
            f'<div class="gallery">\n{gallery}\n</div>',
        ),
        section("What the network looks at", EXPLAINED + inspection_html(run.cfg, run.model, images, predictions)),
    ]


EXPLAINED = """<p>Each map explains the predicted class. Saliency: how strongly each pixel moves the class score.
Grad-CAM: where the last conv layer finds evidence for the class. Occlusion: how much the class
probability drops when a square around the pixel is hidden (red: the class needs it).</p>
"""


def gallery_html(predictions, images: np.ndarray, classes: list[str], size: int) -> str:
    """The most confident mistakes, each with its class probabilities."""
    gallery = []
    index = {c: i for i, c in enumerate(classes)}
    for p in misclassified(predictions, size):
        i = int(p["index"])
        probs = np.array([float(p[f"p_{c}"]) for c in classes])
        fig = plots.prediction_figure(images[i], probs, classes, index[p["actual"]], index[p["predicted"]])
        caption = f"test #{i}: actual {p['actual']}, predicted {p['predicted']} ({float(p['confidence']):.0%})"
        gallery.append(f"<figure>{figure(fig, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>")
    return "\n".join(gallery) or "<p>No misclassified test images.</p>"


def inspection_html(cfg: Config, module: Predictor, images: np.ndarray, predictions) -> str:
    """Saliency, Grad-CAM and occlusion maps for a seeded choice of correct and wrong test images,
    each explaining the class the model predicted; and the first conv layer's filters."""
    r = cfg.report
    classes = list(module.hparams.classes)
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
            parts.append(figure(plots.inspection_figure(images[chosen], titles, maps), f"{kind} maps"))
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
            parts.append(figure(plots.filters_figure(weights), "first conv layer filters"))
    return "\n".join(parts)
