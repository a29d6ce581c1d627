"""Nets over token ids (N, L), 0 padding: the classic multi-hot encoding, and one that reads word order."""

from __future__ import annotations

import torch
from torch import nn


class MultiHot(nn.Module):
    """Token ids (N, L) to (N, num_words) floats: 1 where the word occurs in the row, at any count
    (the classic IMDB/Reuters encoding, built on the device per batch, never stored). Padding
    (id 0) is no word."""

    def __init__(self, num_words: int) -> None:
        super().__init__()
        self.num_words = num_words

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(ids), self.num_words, device=ids.device)
        out.scatter_(1, ids.long(), 1.0)
        out[:, 0] = 0.0
        return out


class TextCNN(nn.Module):
    """Word embeddings, a 1-D convolution over neighbouring words (phrases: "not good"), the
    strongest response of each filter anywhere in the document, then the outputs."""

    def __init__(
        self, num_words: int, outputs: int, *, embedding: int, channels: int, kernel: int, dropout: float
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_words, embedding, padding_idx=0)
        self.conv = nn.Conv1d(embedding, channels, kernel, padding=kernel // 2)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(channels, outputs)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.drop(self.embed(ids.long())).transpose(1, 2)  # (N, embedding, L)
        h = torch.relu(self.conv(h))
        # Padding positions take no part in the maximum.
        h = h.masked_fill((ids == 0).unsqueeze(1), float("-inf")).amax(dim=2)
        h = torch.nan_to_num(h, neginf=0.0)  # a document with no words
        return self.head(self.drop(h))
