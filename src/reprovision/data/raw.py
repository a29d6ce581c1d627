"""The types the dataset registry and its per-format readers share: raw files and what they read to."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class RawData:
    """A dataset as read from its raw files: uint8 images (N, C, H, W), int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None  # None: the dataset has no test split of its own
    y_test: np.ndarray | None
    classes: list[str]


@dataclass(frozen=True)
class RawFile:
    """A file to download and what its content must hash to (md5, the published references).

    Content, not bytes: a .gz is checked decompressed and an archive member by member, so a
    mirror that re-compresses the same data passes. `file_md5` (the published file itself) is
    the fallback where no content checksum is published.
    """

    name: str
    content_md5: str | None = None
    members: dict[str, str] = field(default_factory=dict)
    file_md5: str | None = None
