"""Seeded train/val/test splits of a dataset's raw files (stratified by class for classification);
the test set is never tuned on."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.model_selection import train_test_split

from reprovision.data import SPLITS
from reprovision.data.imagefolder import decode_streamed, scan_imagefolder
from reprovision.data.shards import ShardWriter, save_split
from reprovision.data.sources import RawData, check_manifest, read
from reprovision.errors import DataError
from reprovision.files import atomic_dir, read_json, write_json

if TYPE_CHECKING:
    from reprovision.config import DataConfig


def split_stratified(
    labels: np.ndarray, val_fraction: float, test_fraction: float | None, seed: int, stratify: bool = True
) -> dict[str, np.ndarray]:
    """Sorted index arrays per split, each class in proportion to its share of `labels` (unless
    `stratify` is False: regression targets are not classes).

    `test_fraction=None` means the dataset brings its own test set: only val is carved.
    """
    idx = np.arange(len(labels))
    try:
        if test_fraction is not None:
            strata = labels[idx] if stratify else None
            idx, test = train_test_split(idx, test_size=test_fraction, stratify=strata, random_state=seed)
        strata = labels[idx] if stratify else None
        train, val = train_test_split(idx, test_size=val_fraction, stratify=strata, random_state=seed)
    except ValueError as e:  # e.g. a class too small to appear in every split
        raise DataError(
            f"cannot split stratified: {e}; lower data.val_fraction / "
            "data.test_fraction or add examples to the small classes"
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
    classes, relabel = relabelling(raw.classes, names, dataset)

    def subset(x: np.ndarray | None, y: np.ndarray | None) -> tuple:
        if x is None or y is None:
            return None, None
        mask = relabel[y] >= 0
        return x[mask], relabel[y[mask]]

    (x_train, y_train), (x_test, y_test) = subset(raw.x_train, raw.y_train), subset(raw.x_test, raw.y_test)
    return dataclasses.replace(raw, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, classes=classes)


def relabelling(classes: list[str], names: list[str], dataset: str) -> tuple[list[str], np.ndarray]:
    """The named classes in the dataset's own order, and each old label's new one (-1: left out)."""
    unknown = [n for n in names if n not in classes]
    if unknown:
        raise DataError(f"data.classes: {unknown[0]!r} is not a class of {dataset}; choose from {', '.join(classes)}")
    keep = [i for i, c in enumerate(classes) if c in names]
    relabel = np.full(len(classes), -1, dtype=np.int64)
    relabel[keep] = np.arange(len(keep))
    return [classes[i] for i in keep], relabel


def check_raw(raw: RawData, dataset: str) -> None:
    """Refuse data that cannot train: labels outside 0..k-1, targets that are not finite,
    mismatched image shapes or table columns, no rows."""
    k = len(raw.classes)
    for part, x, y in (("train", raw.x_train, raw.y_train), ("test", raw.x_test, raw.y_test)):
        if x is None:
            continue
        if len(y) == 0:
            raise DataError(f"{dataset}: the {part} set is empty; check the files behind data.name/data.path")
        if len(x) != len(y):
            raise DataError(f"{dataset}: {len(x)} {part} rows but {len(y)} targets; download the dataset again")
        if raw.task == "regression":
            if not np.isfinite(y).all():
                raise DataError(f"{dataset}: a {part} target is not a finite number; fix or drop that row")
            continue
        if y.min() < 0 or y.max() >= k:
            raise DataError(
                f"{dataset}: {part} labels run {y.min()}..{y.max()} but there are {k} classes (0..{k - 1}); "
                "the label file does not belong to these images"
            )
    if raw.kind != "text" and raw.x_test is not None and raw.x_test.shape[1:] != raw.x_train.shape[1:]:
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
                f"{dataset}: class {missing!r} has no examples in the {part} split; raise "
                "data.val_fraction/data.test_fraction, add examples, or leave the class out with data.classes"
            )


def split(data: DataConfig, raw_dir: Path, out_dir: Path, seed: int) -> dict:
    """Read verified raw files, split them, write {train,val,test}/ shards and summary.json (and, for
    text, words.json: the dataset's id -> word table)."""
    manifest = read_json(raw_dir / "manifest.json")
    if manifest.get("dataset") != data.name:
        raise DataError(f"{raw_dir} holds {manifest.get('dataset')!r}, not {data.name!r}; rerun the download stage")
    check_manifest(raw_dir, manifest)
    if data.name == "imagefolder":  # decoded a batch at a time into the shards: any size fits
        return split_streamed(data, raw_dir, out_dir, seed, manifest)
    raw = select_classes(read(data.name, raw_dir, data), data.classes, data.name)
    if (raw.kind, raw.task) != (data.kind, data.task):  # the config's promise, which every later stage reads
        raise DataError(f"{data.name}: read as {raw.task} of {raw.kind} data, configured as {data.task} of {data.kind}")

    check_raw(raw, data.name)
    has_test = raw.x_test is not None
    test_fraction = None if has_test else data.test_fraction
    parts = split_stratified(raw.y_train, data.val_fraction, test_fraction, seed, raw.task == "classification")
    arrays = {s: (raw.x_train[i], raw.y_train[i]) for s, i in parts.items()}
    if has_test:
        arrays["test"] = (raw.x_test, raw.y_test)
    if raw.kind == "text":
        arrays = same_length(arrays)
    if raw.task == "classification":
        check_every_class_in_every_split(arrays, raw.classes, data.name)

    summary = split_summary(raw, data, manifest, arrays, seed)
    with atomic_dir(out_dir) as tmp:
        for s in SPLITS:
            x, y = arrays[s]
            save_split(tmp, s, x, y.astype(np.int64 if raw.task == "classification" else np.float32))
        if raw.kind == "text":
            write_json(tmp / "words.json", list(raw.words))
        write_json(tmp / "summary.json", summary)
    return summary


def split_streamed(data: DataConfig, raw_dir: Path, out_dir: Path, seed: int, manifest: dict) -> dict:
    """`split` for an image folder, whose images are listed first, split by their labels, then
    decoded a batch at a time straight to their place in the shards: the same splits, in the same
    order and bytes, as splitting the stacked images, with no more than a batch in memory."""
    if data.task != "classification":
        raise DataError(f"{data.name}: read as classification of image data, configured as {data.task}")
    classes, listed = scan_imagefolder(raw_dir, data)
    if data.classes is not None:
        classes, relabel = relabelling(classes, data.classes, data.name)
        listed = {s: (n[relabel[y] >= 0], relabel[y[relabel[y] >= 0]]) for s, (n, y) in listed.items()}
    has_test = "test" in listed
    numbers, y = listed["train"]
    parts = split_stratified(y, data.val_fraction, None if has_test else data.test_fraction, seed)
    placed = {s: (numbers[i], y[i]) for s, i in parts.items()} | ({"test": listed["test"]} if has_test else {})
    labels = {s: (None, y) for s, (_, y) in placed.items()}
    check_every_class_in_every_split(labels, classes, data.name)
    count = 1 + max(int(n.max(initial=-1)) for n, _ in listed.values())
    where = np.full((count, 2), -1, dtype=np.int64)  # archive number -> (split, row)
    for code, (n, _) in enumerate(placed.values()):
        where[n] = np.stack([np.full(len(n), code), np.arange(len(n))], axis=1)
    with atomic_dir(out_dir) as tmp:
        writers = [ShardWriter(tmp / s, y) for s, (_, y) in placed.items()]
        shape = decode_streamed(
            raw_dir, data, where[:, 0] >= 0, lambda n, image: writers[where[n, 0]].put(int(where[n, 1]), image[None])
        )
        for writer in writers:
            writer.close()
        none = np.empty((0, *shape), np.uint8)  # the summary reads the image shape off the raw data
        raw = RawData(none, y, none if has_test else None, None, classes)
        summary = split_summary(raw, data, manifest, labels, seed)
        write_json(tmp / "summary.json", summary)
    return summary


def same_length(arrays: dict) -> dict:
    """Token rows of every split padded (PAD is 0) to the longest document of any."""
    length = max(x.shape[1] for x, _ in arrays.values())
    return {s: (np.pad(x, ((0, 0), (0, length - x.shape[1]))), y) for s, (x, y) in arrays.items()}


def split_summary(raw: RawData, data: DataConfig, manifest: dict, arrays: dict, seed: int) -> dict:
    """What the split stage made: the dataset, its task and inputs, the split sizes, and the
    classes (or target values) in each split."""
    summary = {
        "dataset": data.name,
        "description": manifest.get("description", ""),
        "kind": raw.kind,
        "task": raw.task,
        "classes": raw.classes,
        "target": raw.target,
        "raw_bytes": sum(f["bytes"] for f in manifest["files"].values()),
        "test_source": "the dataset's own test split"
        if raw.x_test is not None
        else f"held out ({data.test_fraction:g})",
        "val_fraction": data.val_fraction,
        "seed": seed,
        "sizes": {s: len(arrays[s][1]) for s in SPLITS},
    }
    if raw.kind == "image":
        summary["image_shape"] = list(raw.x_train.shape[1:])
    elif raw.kind == "table":
        summary["features"] = list(raw.features)
    else:
        summary["length"] = int(arrays["train"][0].shape[1])
    if raw.task == "classification":
        summary["class_counts"] = {s: class_counts(arrays[s][1], raw.classes) for s in SPLITS}
    else:
        summary["target_stats"] = {
            s: {"mean": float(y.mean()), "std": float(y.std()), "min": float(y.min()), "max": float(y.max())}
            for s, (_, y) in arrays.items()
        }
    return summary
