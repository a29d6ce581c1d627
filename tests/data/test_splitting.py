"""split: stratified, seeded, disjoint; the summary counts every class in every split."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from tests.data.formats import data_config

from reprovision.data import SPLITS
from reprovision.data.sources import RawData, download
from reprovision.data.splitting import (
    check_every_class_in_every_split,
    check_raw,
    select_classes,
    split,
    split_stratified,
)
from reprovision.errors import DataError

LABELS = np.repeat(np.arange(5), [100, 80, 60, 40, 20])


def test_splits_are_disjoint_and_cover_everything():
    parts = split_stratified(LABELS, 0.2, 0.2, seed=1)
    together = np.concatenate([parts[s] for s in SPLITS])
    assert len(together) == len(LABELS) == len(np.unique(together))


def test_every_class_keeps_its_share_in_every_split():
    parts = split_stratified(LABELS, 0.2, 0.2, seed=1)
    overall = np.bincount(LABELS) / len(LABELS)
    for s in SPLITS:
        share = np.bincount(LABELS[parts[s]], minlength=5) / len(parts[s])
        assert np.abs(share - overall).max() < 0.02, s


def test_same_seed_same_split_other_seed_other_split():
    a, b = split_stratified(LABELS, 0.2, 0.2, 7), split_stratified(LABELS, 0.2, 0.2, 7)
    c = split_stratified(LABELS, 0.2, 0.2, 8)
    assert all(np.array_equal(a[s], b[s]) for s in SPLITS)
    assert not np.array_equal(a["val"], c["val"])


def test_official_test_split_only_carves_val():
    parts = split_stratified(LABELS, 0.25, None, seed=0)
    assert set(parts) == {"train", "val"}
    assert len(parts["val"]) == 75


def test_too_small_class_is_a_clear_data_error():
    with pytest.raises(DataError, match=r"lower data\.val_fraction"):
        split_stratified(np.array([0, 0, 0, 0, 1]), 0.2, 0.2, seed=0)


def test_split_stage_on_digits(tmp_path):
    download(data_config(), tmp_path / "raw")
    summary = split(data_config(), tmp_path / "raw", tmp_path / "split", seed=42)
    assert summary["sizes"] == {"train": 1149, "val": 288, "test": 360}
    assert summary["raw_bytes"] > 0 and summary["classes"] == [str(d) for d in range(10)]
    for s in SPLITS:
        assert sum(summary["class_counts"][s].values()) == summary["sizes"][s]
        assert min(summary["class_counts"][s].values()) > 0
        assert (tmp_path / "split" / s / "index.json").is_file()


def test_a_raw_file_changed_after_download_is_refused_and_the_split_kept(tmp_path):
    """A raw file edited after the download stage verified it (one label changed: it still reads)
    stops the split stage in one line; the split from before stays exactly as it was."""
    raw, out = tmp_path / "raw", tmp_path / "split"
    download(data_config(), raw)
    split(data_config(), raw, out, seed=42)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with gzip.open(raw / "digits.csv.gz", "rt") as f:
        rows = f.read().splitlines()
    first = rows[0].split(",")
    first[-1] = str((int(float(first[-1])) + 1) % 10)  # relabel the first image
    with gzip.open(raw / "digits.csv.gz", "wt") as f:
        f.write("\n".join([",".join(first), *rows[1:]]) + "\n")
    with pytest.raises(DataError) as err:
        split(data_config(), raw, out, seed=42)
    assert str(err.value) == (
        f"{raw / 'digits.csv.gz'}: differs from its download manifest; rerun the download stage (dvc repro -f download)"
    )
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", "split"]  # no half-written split beside it


def test_class_subset_is_relabelled_and_keeps_names():
    x = np.arange(12, dtype=np.uint8).reshape(6, 1, 1, 2)
    raw = RawData(x, np.array([0, 1, 2, 0, 1, 2]), x[:3], np.array([2, 1, 0]), ["plane", "car", "bird"])
    sub = select_classes(raw, ["bird", "plane"], "toy")  # listed order does not matter
    assert sub.classes == ["plane", "bird"]
    assert sub.y_train.tolist() == [0, 1, 0, 1] and sub.y_test.tolist() == [1, 0]
    assert np.array_equal(sub.x_train, x[[0, 2, 3, 5]])
    with pytest.raises(DataError, match="'ship' is not a class of toy; choose from plane, car, bird"):
        select_classes(raw, ["ship", "car"], "toy")


def _raw(y_train, y_test=None, x_test_shape=None, classes=("a", "b", "c")) -> RawData:
    x = np.zeros((len(y_train), 1, 4, 4), np.uint8)
    x_test = None if y_test is None else np.zeros((len(y_test), *(x_test_shape or (1, 4, 4))), np.uint8)
    return RawData(x, np.asarray(y_train), x_test, None if y_test is None else np.asarray(y_test), list(classes))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_raw([0, 1, 3, 1]), "toy: train labels run 0..3 but there are 3 classes (0..2)"),
        (_raw([0, 1, 2], [0, -1]), "toy: test labels run -1..0"),
        (
            _raw([0, 1, 2], [0, 1], x_test_shape=(3, 4, 4)),
            "toy: test images are (3, 4, 4) (C, H, W) but train images (1, 4, 4)",
        ),
        (_raw([]), "toy: the train set is empty"),
    ],
)
def test_unusable_data_is_refused_before_training(raw, message):
    with pytest.raises(DataError) as err:
        check_raw(raw, "toy")
    assert str(err.value).startswith(message)


def test_a_class_absent_from_a_split_is_named():
    arrays = {
        "train": (None, np.array([0, 1, 2, 2])),
        "val": (None, np.array([0, 1])),
        "test": (None, np.array([0, 1, 2])),
    }
    with pytest.raises(DataError, match=r"toy: class 'c' has no examples in the val split; raise data\.val_fraction"):
        check_every_class_in_every_split(arrays, ["a", "b", "c"], "toy")
