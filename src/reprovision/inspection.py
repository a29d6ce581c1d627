"""What the network looks at (Captum): for images saliency, Grad-CAM, occlusion maps and
first-layer filters; for text the words, and for tables the features, that moved an output.

Every image map function takes a classifier (normalised input -> logits), a batch of normalised
images (N, C, H, W) and the class to explain for each image, and returns one map per image at
the input's size (N, H, W). Text and table attributions take the net's input as it reads it
(vocabulary ids, normalised rows). Plain functions: no files, no tracking.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from captum.attr import (
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    LayerIntegratedGradients,
    Occlusion,
    Saliency,
)
from torch import nn

from reprovision.models.text import MultiHot

STEPS = 50  # integrated gradients' steps from the baseline: Captum's default, sums within ~1% here
# Examples x steps per forward pass: a text net's activations for one long document (IMDB's
# longest, 2,500 words, x 128 channels) are ~1 MB a step, so ~100 MB a pass, not 50 x that per document.
BATCH = 100


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


def word_layer(model: nn.Module) -> nn.Embedding | MultiHot:
    """Where a text net first turns token ids into numbers: its embedding (a vector per position)
    or its multi-hot encoding (one input per vocabulary word)."""
    layer = next((m for m in model.modules() if isinstance(m, nn.Embedding | MultiHot)), None)
    if layer is None:
        raise ValueError(f"{type(model).__name__} reads no token ids: it has no embedding or multi-hot layer")
    return layer


def word_attributions(model: nn.Module, ids: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """How much each position's word moved the target class's logit (N, L): integrated gradients
    at the word layer, from the blank document (every word's embedding, or multi-hot input, at
    zero: padding's) to this one, so a document's attributions over its distinct words add up to
    its logit minus the blank one's. An embedding's are summed over its dimensions, one per
    position; a multi-hot word's (present or not, at any count) is repeated at each of its
    occurrences. Padding gets 0: the multi-hot encoding drops it, the embedding's padding vector is
    zero."""
    layer = word_layer(model)
    ids = ids.long()
    attributions = LayerIntegratedGradients(model, layer).attribute(
        ids, baselines=torch.zeros_like(ids), target=target, n_steps=STEPS, internal_batch_size=BATCH
    )
    per_position = attributions.sum(dim=2) if isinstance(layer, nn.Embedding) else attributions.gather(1, ids)
    return per_position.detach()


def feature_attributions(
    model: nn.Module, rows: torch.Tensor, target: torch.Tensor | None = None, chunk: int = 1024
) -> torch.Tensor:
    """How much each feature of normalised table rows (N, F) moved the output (the target class's
    logit, or a regression's value when `target` is None): integrated gradients from the all-zero
    row, the training split's mean, so a row's attributions add up to its output minus the mean
    row's. In chunks of rows: Captum evaluates STEPS copies of each."""
    ig = IntegratedGradients(model)
    parts = [
        ig.attribute(part, baselines=0.0, target=None if target is None else target[i : i + chunk], n_steps=STEPS)
        for i, part in zip(range(0, len(rows), chunk), rows.split(chunk), strict=True)
    ]
    return torch.cat(parts).detach() if parts else torch.zeros_like(rows)
