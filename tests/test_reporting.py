"""report stage: the page shows the run's own numbers and mistakes; the inspection section
follows the config switches and the kind of net."""

from __future__ import annotations

import base64
import dataclasses
import io
import re

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from reprovision.cli import main
from reprovision.config import compose, load_config
from reprovision.files import save_arrays, write_csv, write_json
from reprovision.models.classifier import ImageClassifier
from reprovision.reporting import inspection_html

NETS = {
    "cnn": {"name": "cnn", "init": "default", "channels": [8, 16], "hidden": 32, "dropout": 0.0},
    "mlp": {"name": "mlp", "init": "default", "hidden": [32], "dropout": 0.0},
}


def checkpoint(tmp_path, net: dict, image_shape: list[int]):
    """A checkpoint as train writes it (plain hyperparameters + weights) for an untrained net."""
    module = ImageClassifier(
        net=net,
        optim={},
        classes=["a", "b", "c"],
        image_shape=image_shape,
        mean=[0.5] * image_shape[0],
        std=[0.25] * image_shape[0],
    )
    path = tmp_path / "model.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


def predictions(n: int) -> list[dict[str, str]]:
    # Every third image wrong, so there are correct and wrong ones to inspect.
    return [{"index": str(i), "actual": "abc"[i % 3], "predicted": "abc"[(i + (i % 3 == 0)) % 3]} for i in range(n)]


def images_in(page: str) -> list[str]:
    return re.findall(r'<img alt="([^"]*)"', page)


@pytest.mark.parametrize("channels", [1, 3])
def test_conv_nets_get_every_map_and_their_filters(tmp_path, root, channels):
    cfg = load_config(root / "params.yaml")
    images = np.random.default_rng(0).integers(0, 256, size=(12, channels, 16, 16), dtype=np.uint8)
    page = inspection_html(
        cfg, checkpoint(tmp_path, NETS["cnn"], [channels, 16, 16]), images, predictions(12), ["a", "b", "c"]
    )
    assert images_in(page) == ["correct maps", "wrong maps", "first conv layer filters"]
    assert "8 filters of 3x3" in page


def test_dense_nets_say_why_grad_cam_and_filters_are_missing(tmp_path, root):
    cfg = load_config(root / "params.yaml")
    images = np.random.default_rng(0).integers(0, 256, size=(12, 1, 8, 8), dtype=np.uint8)
    page = inspection_html(cfg, checkpoint(tmp_path, NETS["mlp"], [1, 8, 8]), images, predictions(12), ["a", "b", "c"])
    assert images_in(page) == ["correct maps", "wrong maps"]
    assert "No Grad-CAM" in page and "No filters" in page


def test_every_inspection_switch_off_leaves_no_images(tmp_path, root):
    cfg = load_config(root / "params.yaml")
    off = dataclasses.replace(cfg.report, saliency=False, grad_cam=False, occlusion=False, filters=False)
    cfg = dataclasses.replace(cfg, report=off)
    images = np.random.default_rng(0).integers(0, 256, size=(12, 1, 8, 8), dtype=np.uint8)
    page = inspection_html(cfg, checkpoint(tmp_path, NETS["cnn"], [1, 8, 8]), images, predictions(12), ["a", "b", "c"])
    assert images_in(page) == []


@pytest.mark.parametrize("gallery_size", [2, 16])
def test_the_page_shows_eval_json_and_exactly_the_most_confident_mistakes(tmp_path, root, gallery_size, capsys):
    """The report stage as `dvc repro` runs it, on a run's files: 12 test images, 4 of them wrong."""
    overrides = ["model=mlp", "model.hidden=[32]", f"report.gallery_size={gallery_size}", "report.examples=2"]
    (tmp_path / "params.yaml").write_text(OmegaConf.to_yaml(compose(root / "conf", overrides)))
    (tmp_path / "models").mkdir()
    checkpoint(tmp_path / "models", NETS["mlp"], [1, 8, 8])
    (tmp_path / "split").mkdir()
    images = np.random.default_rng(0).integers(0, 256, size=(12, 1, 8, 8), dtype=np.uint8)
    save_arrays(tmp_path / "split" / "test.npz", x=images, y=np.arange(12) % 3)
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    rows = predictions(12)  # wrong: #0, #3, #6, #9; the later, the more confident
    for p in rows:
        p["confidence"] = f"{0.5 + int(p['index']) / 40:.6f}"
        p.update({f"p_{c}": p["confidence"] if c == p["predicted"] else "0.1" for c in "abc"})
    write_csv(metrics / "predictions.csv", rows, ["index", "actual", "predicted", "confidence", "p_a", "p_b", "p_c"])
    matrix = np.zeros((3, 3), int)
    for p in rows:
        matrix["abc".index(p["actual"]), "abc".index(p["predicted"])] += 1
    write_json(metrics / "confusion_matrix.json", {"classes": ["a", "b", "c"], "matrix": matrix.tolist()})
    write_json(metrics / "eval.json", {"test/acc": 8 / 12, "test/f1_macro": 0.65, "test/loss": 0.8})
    write_json(metrics / "train.json", {"epochs": 2, "best_epoch": 2, "val/acc": 0.9})
    curves = [{"epoch": e, "train/loss": 1 / e, "train/acc": 0.5, "val/loss": 1 / e, "val/acc": 0.9} for e in (1, 2)]
    write_csv(metrics / "curves.csv", curves, ["epoch", "train/loss", "train/acc", "val/loss", "val/acc"])

    argv = ["report", "--params", str(tmp_path / "params.yaml"), "--metrics", str(metrics)]
    argv += ["--split", str(tmp_path / "split"), "--model", str(tmp_path / "models")]
    argv += ["--run", str(tmp_path / "no-run.json"), "--out", str(tmp_path / "report")]
    assert main(argv) == 0, capsys.readouterr().err
    page = (tmp_path / "report" / "index.html").read_text()

    assert re.search(r"<tr><th>test/acc</th><td>([^<]*)</td></tr>", page)[1] == "0.6667"  # eval.json's
    assert "Misclassified test images (4 of 12;" in page
    gallery = page[page.index('<div class="gallery">') : page.index("</div>", page.index('<div class="gallery">'))]
    shown = [int(i) for i in re.findall(r"<figcaption>test #(\d+): ", gallery)]
    assert shown == [9, 6, 3, 0][:gallery_size]  # the most confident mistakes, no right answers
    pngs = [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]
    assert len(pngs) >= 5 + len(shown)  # curves, two confusion matrices, per-class, pairs, the gallery
    for png in pngs:
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG" and min(image.size) > 10
            image.load()  # the whole image decodes, not only its header
