"""Training augmentation on whole batches, on whatever device the batch is on."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
