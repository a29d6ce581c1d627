"""report stage: the inspection section follows the config switches and the kind of net."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

from reprovision.config import load_config
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
