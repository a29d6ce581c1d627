"""Training augmentation on whole batches, on whatever device the batch is on."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

RATIO = (3 / 4, 4 / 3)  # a resized crop's aspect ratios, width over height (torchvision's defaults)


def resized_crop(x: torch.Tensor, scale: tuple[float, float]) -> torch.Tensor:
    """Random resized crops of float images, one draw per image, as torchvision's
    RandomResizedCrop draws them (a share `scale` of the area, a log-uniform aspect in RATIO)
    but in one call for the batch: a box that would not fit is clipped to the image rather than
    drawn again. Each box is resized back to the image's size by RoIAlign, bilinear, averaging
    over the pixels a larger box gives each output pixel."""
    from torchvision.ops import roi_align

    n, _, h, w = x.shape
    area = h * w * torch.empty(n, device=x.device).uniform_(*scale)
    ratio = torch.exp(torch.empty(n, device=x.device).uniform_(math.log(RATIO[0]), math.log(RATIO[1])))
    box_w, box_h = torch.sqrt(area * ratio).clamp(1, w), torch.sqrt(area / ratio).clamp(1, h)
    left, top = torch.rand(n, device=x.device) * (w - box_w), torch.rand(n, device=x.device) * (h - box_h)
    index = torch.arange(n, device=x.device, dtype=x.dtype)
    boxes = torch.stack([index, left, top, left + box_w, top + box_h], dim=1).to(x.dtype)
    return roi_align(x, boxes, (h, w), aligned=True)


def flip_crop(x: torch.Tensor, crop_padding: int, flip: bool) -> torch.Tensor:
    """Random horizontal flips and random crops after zero-padding, one draw per image.

    One gather for the whole batch: no per-image Python loop, no host round trip.
    """
    n, c, h, w = x.shape
    if flip:
        mask = torch.rand(n, device=x.device) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    if crop_padding:
        p = crop_padding
        padded = F.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (n,), device=x.device)
        dx = torch.randint(0, 2 * p + 1, (n,), device=x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chans = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[batch, chans, rows, cols]
    return x
