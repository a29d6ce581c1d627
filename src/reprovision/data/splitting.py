"""Stratified, seeded train/val/test splits of a dataset's raw files; the test set is never tuned on."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.model_selection import train_test_split

from reprovision.data import SPLITS
from reprovision.data.sources import RawData, check_manifest, read
from reprovision.errors import DataError
from reprovision.files import atomic_dir, read_json, save_arrays, write_json

if TYPE_CHECKING:
    from reprovision.config import DataConfig


def split_stratified(
    labels: np.ndarray, val_fraction: float, test_fraction: float | None, seed: int
) -> dict[str, np.ndarray]:
    """Sorted index arrays per split, each class in proportion to its share of `labels`.

    `test_fraction=None` means the dataset brings its own test set: only val is carved.
    """
    idx = np.arange(len(labels))
    try:
        if test_fraction is not None:
            idx, test = train_test_split(idx, test_size=test_fraction, stratify=labels[idx], random_state=seed)
        train, val = train_test_split(idx, test_size=val_fraction, stratify=labels[idx], random_state=seed)
    except ValueError as e:  # e.g. a class too small to appear in every split
        raise DataError(
            f"cannot split stratified: {e}; lower data.val_fraction / "
            "data.test_fraction or add images to the small classes"
        ) from None
    out = {"train": np.sort(train), "val": np.sort(val)}
    if test_fraction is not None:
        out["test"] = np.sort(test)
    return out


def class_counts(labels: np.ndarray, classes: list[str]) -> dict[str, int]:
    counts = np.bincount(labels, minlength=len(classes))
    return {name: int(n) for name, n in zip(classes, counts, strict=True)}


def select_classes(raw: RawData, names: list[str] | None, dataset: str) -> RawData:
    """Keep only the named classes, relabelled 0..k-1 in the dataset's own class order."""
    if names is None:
        return raw
    unknown = [n for n in names if n not in raw.classes]
    if unknown:
        raise DataError(
            f"data.classes: {unknown[0]!r} is not a class of {dataset}; choose from {', '.join(raw.classes)}"
        )
    keep = [i for i, c in enumerate(raw.classes) if c in names]
    relabel = np.full(len(raw.classes), -1, dtype=np.int64)
    relabel[keep] = np.arange(len(keep))

    def subset(x: np.ndarray | None, y: np.ndarray | None) -> tuple:
        if x is None or y is None:
            return None, None
        mask = relabel[y] >= 0
        return x[mask], relabel[y[mask]]

    return RawData(*subset(raw.x_train, raw.y_train), *subset(raw.x_test, raw.y_test), [raw.classes[i] for i in keep])


def check_raw(raw: RawData, dataset: str) -> None:
    """Refuse data that cannot train: labels outside 0..k-1, mismatched image shapes, no images."""
    k = len(raw.classes)
    for part, x, y in (("train", raw.x_train, raw.y_train), ("test", raw.x_test, raw.y_test)):
        if x is None:
            continue
        if len(y) == 0:
            raise DataError(f"{dataset}: the {part} set is empty; check the files behind data.name/data.path")
        if len(x) != len(y):
            raise DataError(f"{dataset}: {len(x)} {part} images but {len(y)} labels; download the dataset again")
        if y.min() < 0 or y.max() >= k:
            raise DataError(
                f"{dataset}: {part} labels run {y.min()}..{y.max()} but there are {k} classes (0..{k - 1}); "
                "the label file does not belong to these images"
            )
    if raw.x_test is not None and raw.x_test.shape[1:] != raw.x_train.shape[1:]:
        raise DataError(
            f"{dataset}: test images are {tuple(raw.x_test.shape[1:])} (C, H, W) but train images "
            f"{tuple(raw.x_train.shape[1:])}; use data=imagefolder with data.channels/data.image_size"
        )


def check_every_class_in_every_split(arrays: dict, classes: list[str], dataset: str) -> None:
    for part in SPLITS:
        counts = np.bincount(arrays[part][1], minlength=len(classes))
        if (counts == 0).any():
            missing = classes[int(np.argmin(counts))]
            raise DataError(
                f"{dataset}: class {missing!r} has no images in the {part} split; raise "
                "data.val_fraction/data.test_fraction, add images, or leave the class out with data.classes"
            )


def split(data: DataConfig, raw_dir: Path, out_dir: Path, seed: int) -> dict:
    """Read verified raw files, split them, write {train,val,test}.npz and summary.json."""
    manifest = read_json(raw_dir / "manifest.json")
    if manifest.get("dataset") != data.name:
        raise DataError(f"{raw_dir} holds {manifest.get('dataset')!r}, not {data.name!r}; rerun the download stage")
    check_manifest(raw_dir, manifest)
    raw = select_classes(read(data.name, raw_dir, data), data.classes, data.name)

    check_raw(raw, data.name)
    has_test = raw.x_test is not None
    test_fraction = None if has_test else data.test_fraction
    parts = split_stratified(raw.y_train, data.val_fraction, test_fraction, seed)
    arrays = {s: (raw.x_train[i], raw.y_train[i]) for s, i in parts.items()}
    if has_test:
        arrays["test"] = (raw.x_test, raw.y_test)
    check_every_class_in_every_split(arrays, raw.classes, data.name)

    summary = {
        "dataset": data.name,
        "description": manifest.get("description", ""),
        "classes": raw.classes,
        "image_shape": list(raw.x_train.shape[1:]),
        "raw_bytes": sum(f["bytes"] for f in manifest["files"].values()),
        "test_source": "the dataset's own test split" if has_test else f"held out ({data.test_fraction:g})",
        "val_fraction": data.val_fraction,
        "seed": seed,
        "sizes": {s: len(arrays[s][1]) for s in SPLITS},
        "class_counts": {s: class_counts(arrays[s][1], raw.classes) for s in SPLITS},
    }
    with atomic_dir(out_dir) as tmp:
        for s in SPLITS:
            x, y = arrays[s]
            save_arrays(tmp / f"{s}.npz", x=x, y=y.astype(np.int64))
        write_json(tmp / "summary.json", summary)
    return summary
