"""What the network looks at: saliency, Grad-CAM, occlusion maps and first-layer filters (Captum).

Every map function takes a classifier (normalised input -> logits), a batch of normalised
images (N, C, H, W) and the class to explain for each image, and returns one map per image at
the input's size (N, H, W). Plain functions: no files, no tracking.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam, Occlusion, Saliency
from torch import nn


def saliency(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """|d logit[target] / d pixel|, the largest over channels: how much each pixel can move the score."""
    grads = Saliency(model).attribute(x.detach().requires_grad_(), target=target, abs=True)
    return grads.amax(dim=1).detach()


def last_conv(model: nn.Module) -> nn.Conv2d | None:
    """The deepest conv layer, where Grad-CAM reads its maps (None for nets without convolutions)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None


def grad_cam(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """Grad-CAM at the last conv layer, upsampled to the image; None if the net has no conv layer."""
    layer = last_conv(model)
    if layer is None:
        return None
    cam = LayerGradCam(model, layer).attribute(x.detach().requires_grad_(), target=target, relu_attributions=True)
    return LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), "bilinear")[:, 0].detach()


def occlusion_window(image_size: int, fraction: float) -> tuple[int, int]:
    """Side and stride of the occluding square: a fraction of the image, stepped half a window."""
    side = max(1, math.ceil(image_size * fraction))
    return side, max(1, side // 2)


def occlusion(model: nn.Module, x: torch.Tensor, target: torch.Tensor, window: int, stride: int) -> torch.Tensor:
    """Drop in the target's probability when a window of the image is replaced by the training
    mean (0 after normalisation), averaged over the windows covering each pixel."""
    channels = x.shape[1]

    def probabilities(inputs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model(inputs), dim=1)

    with torch.no_grad():
        drop = Occlusion(probabilities).attribute(
            x,
            target=target,
            sliding_window_shapes=(channels, window, window),
            strides=(channels, stride, stride),
            baselines=0.0,
        )
    return drop.mean(dim=1)  # the window spans every channel: each holds the same value


def first_conv_filters(model: nn.Module) -> np.ndarray | None:
    """The first conv layer's weights (out, in, k, k), or None for nets without convolutions."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return None if conv is None else conv.weight.detach().cpu().numpy()


def select_examples(actual: np.ndarray, predicted: np.ndarray, per_kind: int, seed: int) -> dict[str, np.ndarray]:
    """A fixed, seeded choice of up to `per_kind` correct and `per_kind` wrong test indices, sorted."""
    rng = np.random.default_rng(seed)
    chosen = {}
    for kind, mask in (("correct", actual == predicted), ("wrong", actual != predicted)):
        pool = np.flatnonzero(mask)
        chosen[kind] = np.sort(rng.choice(pool, size=min(per_kind, len(pool)), replace=False))
    return chosen


def top_confused_pairs(matrix: np.ndarray, limit: int) -> list[tuple[int, int, int]]:
    """(actual, predicted, count) of the largest off-diagonal cells, most confused first."""
    matrix = np.asarray(matrix)
    pairs = [(int(i), int(j), int(matrix[i, j])) for i, j in zip(*np.nonzero(matrix), strict=True) if i != j]
    pairs.sort(key=lambda p: (-p[2], p[0], p[1]))
    return pairs[:limit]
