"""Splits as shards: what the split stage writes, what every stage reads back, and what a shard
directory that says anything unexpected gets."""

from __future__ import annotations

import io
import json
import pickle
import random
import tarfile
from pathlib import Path

import numpy as np
import pytest
from tests.data.formats import data_config, photo, photo_archive

from reprovision.data import imagefolder, shards
from reprovision.data.shards import Shards, ShardWriter, load_split, save_split
from reprovision.data.sources import download, read
from reprovision.data.splitting import split, split_stratified
from reprovision.errors import DataError

ROOT = Path(__file__).resolve().parents[2]


def test_rows_come_back_from_any_shard_in_any_order(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (500, 3, 4, 4), dtype=np.uint8), np.arange(500)
    save_split(tmp_path, "train", x, y, shard_bytes=48 * 30 + 7)  # 30 rows a shard, the last one short
    files = sorted((tmp_path / "train").glob("x-*.npy"))
    assert len(files) == 17 and all(np.load(f).nbytes <= 48 * 30 for f in files)
    back = load_split(tmp_path, "train")
    assert np.array_equal(back["x"], x) and np.array_equal(back["y"], y)
    split_ = Shards(tmp_path / "train")
    rows = [*rng.permutation(500)[:123].tolist(), 29, 30, 29]  # across boundaries, repeated
    assert np.array_equal(split_.read(rows), x[rows])
    assert np.array_equal(split_[7], x[7]) and np.array_equal(split_[10:50:3], x[10:50:3])
    assert np.array_equal(split_[25:95], x[25:95]) and split_[480:600].shape == (20, 3, 4, 4)
    assert np.array_equal(np.concatenate([b for b, _ in split_.blocks(1000)]), x)
    assert np.array_equal(pickle.loads(pickle.dumps(split_)).read(rows), x[rows])  # as DataLoader workers get it


def test_rows_written_in_any_order_land_in_their_place_and_a_missing_row_is_refused(tmp_path):
    x = np.arange(40 * 6, dtype=np.float32).reshape(40, 6)
    writer = ShardWriter(tmp_path / "val", np.arange(40) % 3, shard_bytes=24 * 7)
    for i in random.Random(0).sample(range(40), 40):
        writer.put(i, x[i : i + 1])
    writer.close()
    assert np.array_equal(load_split(tmp_path, "val")["x"], x)
    writer = ShardWriter(tmp_path / "test", np.arange(40) % 3)
    writer.put(0, x[:39])
    with pytest.raises(DataError, match="row 39 of 40 was never written"):
        writer.close()
    assert not (tmp_path / "test" / "index.json").exists()


def _tamper(directory: Path, edit) -> None:
    index = json.loads((directory / "index.json").read_text())
    edit(index)
    (directory / "index.json").write_text(json.dumps(index))


@pytest.mark.parametrize(
    ("attack", "message"),
    [
        (lambda d: _tamper(d, lambda i: i["x"].update(dtype="object")), "x must be one of uint8"),
        (lambda d: _tamper(d, lambda i: i["shards"][0].update(x="../../secret.npy")), "is not named x-00000.npy"),
        (lambda d: _tamper(d, lambda i: i.update(rows=11)), "says 11 rows, its shards 10"),
        (lambda d: _tamper(d, lambda i: i["x"].update(shape=[3, 2, 2])), "not the uint8 (10, 3, 2, 2)"),
        (lambda d: (d / "x-00000.npy").write_bytes((d / "x-00000.npy").read_bytes()[:-5]), "not the uint8"),
        (lambda d: (d / "index.json").write_text("{"), "cannot be read"),
    ],
)
def test_a_shard_directory_that_says_anything_unexpected_is_refused_in_one_line(tmp_path, attack, message):
    save_split(tmp_path, "train", np.zeros((10, 3, 4, 4), np.uint8), np.zeros(10, np.int64))
    attack(tmp_path / "train")
    with pytest.raises(DataError) as err:
        Shards(tmp_path / "train")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_pickled_shard_is_refused_from_its_header_and_never_unpickled(tmp_path):
    save_split(tmp_path, "train", np.zeros((2, 3), np.float32), np.zeros(2, np.int64))
    marker = tmp_path / "unpickled"
    payload = np.empty(2, dtype=object)
    payload[:] = [_Marker(marker), _Marker(marker)]
    np.save(tmp_path / "train" / "x-00000.npy", payload, allow_pickle=True)
    with pytest.raises(DataError, match="holds object"):
        Shards(tmp_path / "train")
    assert not marker.exists()


class _Marker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


# --- the split stage on an image folder ----------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "extra"),
    [
        ({"train": {"cat": 17, "dog": 23, "owl": 15}}, []),
        (
            {"train": {"cat": 12, "dog": 9, "owl": 10}, "test": {"cat": 4, "dog": 5, "owl": 3}},
            ["data.classes=[owl,cat]"],
        ),
    ],
)
def test_an_image_folder_is_split_a_batch_at_a_time_into_the_rows_of_the_stacked_split(
    tmp_path, monkeypatch, layout, extra
):
    """The streamed split (images listed, split by label, then decoded a few at a time on two
    processes straight into their shard rows) holds the rows splitting the stacked images gives,
    in the same order: the same bytes whatever order the archive stores them in."""
    monkeypatch.setattr(imagefolder, "DECODE_BATCH", (4, 2**25))
    monkeypatch.setattr(shards, "SHARD_BYTES", 3 * 12 * 12 * 5)  # five images a shard
    archive = photo_archive(tmp_path / "photos.tar", layout)
    cfg = data_config("data=imagefolder", f"data.path={archive}", "data.image_size=12", *extra)
    download(cfg, tmp_path / "raw")
    summary = split(cfg, tmp_path / "raw", tmp_path / "split", seed=3)

    raw = read("imagefolder", tmp_path / "raw", cfg)  # every image decoded and stacked
    keep = [raw.classes.index(c) for c in cfg.classes] if cfg.classes else range(len(raw.classes))
    keep = sorted(keep)
    relabel = {old: new for new, old in enumerate(keep)}
    expected = {}
    mask = np.isin(raw.y_train, keep)
    x, y = raw.x_train[mask], np.array([relabel[v] for v in raw.y_train[mask]])
    parts = split_stratified(y, cfg.val_fraction, None if raw.x_test is not None else cfg.test_fraction, 3)
    expected = {s: (x[i], y[i]) for s, i in parts.items()}
    if raw.x_test is not None:
        mask = np.isin(raw.y_test, keep)
        expected["test"] = raw.x_test[mask], np.array([relabel[v] for v in raw.y_test[mask]])
    for s, (ex, ey) in expected.items():
        got = load_split(tmp_path / "split", s)
        assert np.array_equal(got["x"], ex) and np.array_equal(got["y"], ey), s
    assert len(list((tmp_path / "split" / "train").glob("x-*.npy"))) == -(-len(expected["train"][1]) // 5)
    assert summary["image_shape"] == [3, 12, 12] and summary["sizes"]["train"] == len(expected["train"][1])


def test_images_of_mixed_sizes_are_refused_at_download_in_one_line_and_the_old_data_kept(tmp_path):
    archive = tmp_path / "photos.tar"
    with tarfile.open(archive, "w") as tar:
        for i, size in enumerate([12, 12, 12, 16, 12, 12]):
            data = photo(i, size)
            info = tarfile.TarInfo(f"train/{'ab'[i % 2]}/{i}.png")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "kept").write_text("the data from before")
    with pytest.raises(DataError) as err:
        download(data_config("data=imagefolder", f"data.path={archive}", "data.image_size=null"), tmp_path / "raw")
    assert str(err.value) == (
        "imagefolder: images of mixed sizes (12, 12) and (16, 16) (train/b/3.png); set data.image_size to resize them all"
    )
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["kept"]


def test_a_changed_shard_is_never_resumed_from(tmp_path):
    """The resume fingerprint reads every shard: one pixel changed in a split is another split."""
    from reprovision.config import compose, validate
    from reprovision.training.resume import fingerprint

    cfg = validate(compose(ROOT / "conf", []))
    x = np.zeros((10, 1, 4, 4), np.uint8)
    save_split(tmp_path / "split", "train", x, np.zeros(10, np.int64))
    (tmp_path / "split" / "summary.json").write_text("{}")
    (tmp_path / "norm").mkdir()
    before = fingerprint(cfg, tmp_path / "split", tmp_path / "norm")
    x[9, 0, 3, 3] = 1
    save_split(tmp_path / "split", "train", x, np.zeros(10, np.int64))
    assert fingerprint(cfg, tmp_path / "split", tmp_path / "norm") != before


def test_rows_of_pooled_splits_are_written_as_indexing_their_stacked_arrays_would(tmp_path):
    """k-fold's folds and the refit's pool: rows of train and val end to end, any order, written
    a block at a time across both sources' shard boundaries."""
    rng = np.random.default_rng(1)
    x = {s: rng.integers(0, 256, (n, 2, 3, 3), dtype=np.uint8) for s, n in (("train", 70), ("val", 23))}
    y = {s: rng.integers(0, 5, len(x[s])) for s in x}
    for s in x:
        save_split(tmp_path, s, x[s], y[s], shard_bytes=18 * 8)  # 8 rows a shard
    pool = [Shards(tmp_path / s) for s in ("train", "val")]
    rows = rng.permutation(93)[:60]
    assert (rows >= 70).any() and (rows < 70).any()
    shards.write_rows(tmp_path / "fold", pool, rows, max_bytes=18 * 7)  # 7 rows a block
    back = load_split(tmp_path, "fold")
    assert np.array_equal(back["x"], np.concatenate([x["train"], x["val"]])[rows])
    assert np.array_equal(back["y"], np.concatenate([y["train"], y["val"]])[rows])
    save_split(tmp_path, "other", rng.integers(0, 256, (5, 2, 3, 4), dtype=np.uint8), np.zeros(5, int))
    with pytest.raises(DataError, match="cannot be pooled"):
        shards.write_rows(tmp_path / "mixed", [pool[0], Shards(tmp_path / "other")], np.arange(3))
