"""normalise: statistics come from the training split only and apply to every split, a batch at
a time as the net reads it; no normalised copy of the data is written."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch

from reprovision.data.normalise import channel_stats, net_inputs, normalise
from reprovision.data.raw import FIRST_WORD, RESERVED_WORDS, START
from reprovision.data.shards import load_split, save_split
from reprovision.data.text import decode
from reprovision.files import read_json, write_json
from reprovision.models.predictor import Predictor


def as_the_net_reads(split_dir, data_dir, split: str) -> np.ndarray:
    """A split's inputs through the net's own preprocessing (training, evaluate, predict, serve)."""
    stats = read_json(data_dir / "stats.json")
    net = Predictor({"name": "mlp", "hidden": [2], "dropout": 0.0}, stats["task"], stats["classes"], stats["inputs"])
    x = net_inputs(split_dir, data_dir, split, stats["inputs"]["kind"])["x"]
    return net.preprocess(torch.from_numpy(x)).numpy()


def test_channel_stats_per_channel():
    x = np.zeros((2, 3, 2, 2), dtype=np.uint8)
    x[:, 0] = 255
    x[0, 1], x[1, 1] = 0, 255
    mean, std = channel_stats(x)
    assert mean == [1.0, 0.5, 0.0]
    assert std == [1.0, 0.5, 1.0]  # constant channels are left unscaled (std 1)


def test_channel_stats_are_exact_whatever_the_chunks():
    """Shards or chunks of any size, in any order, give the same bytes: the nearest floats to the
    true mean and variance, counted in integers."""
    x = np.random.default_rng(0).integers(0, 256, size=(301, 3, 7, 5), dtype=np.uint8)
    whole = channel_stats(x)
    assert channel_stats(iter([x[200:], x[:13], x[13:200]])) == whole
    assert channel_stats(iter(x[i : i + 1] for i in range(len(x)))) == whole
    for c in range(3):
        values = [int(v) for v in x[:, c].ravel()]
        n, s = len(values), sum(values)
        assert whole[0][c] == float(Fraction(s, 255 * n))
        variance = Fraction(sum(v * v for v in values) * n - s * s, (255 * n) ** 2)
        assert whole[1][c] == float(variance) ** 0.5
    assert np.allclose(whole[0], (x / 255.0).mean(axis=(0, 2, 3)), rtol=1e-14)
    assert np.allclose(whole[1], (x / 255.0).std(axis=(0, 2, 3)), rtol=1e-12)


def test_the_stage_writes_statistics_and_no_copy_of_the_images(tiny_split, tmp_path):
    stats = normalise(tiny_split, tmp_path / "norm")["inputs"]
    assert sorted(p.name for p in (tmp_path / "norm").iterdir()) == ["stats.json"]
    assert stats["mean"] == channel_stats(load_split(tiny_split, "train")["x"])[0]
    assert read_json(tmp_path / "norm" / "stats.json")["classes"] == ["a", "b", "c"]
    test = as_the_net_reads(tiny_split, tmp_path / "norm", "test")
    raw = load_split(tiny_split, "test")["x"]
    m, sd = (np.asarray(stats[k], np.float32)[None, :, None, None] for k in ("mean", "std"))
    assert test.dtype == np.float32 and np.array_equal(test, (raw.astype(np.float32) / 255.0 - m) / sd)


def test_mean_and_std_come_from_the_training_split_alone(tmp_path):
    """Val and test images spread wider and sit elsewhere than train's: the stage's statistics, and
    so the scale of every split, are train's alone (a model tuned on val must not see val's spread)."""
    rng = np.random.default_rng(0)
    split = tmp_path / "split"
    split.mkdir()
    # Per split, each channel's pixel range (low, high): train narrow, val wide, test dark.
    ranges = {"train": [(100, 140), (20, 60)], "val": [(0, 255), (0, 255)], "test": [(0, 40), (200, 255)]}
    raw = {}
    for name, channels in ranges.items():
        raw[name] = np.stack([rng.integers(lo, hi + 1, size=(30, 5, 5)) for lo, hi in channels], 1).astype(np.uint8)
        save_split(split, name, raw[name], np.arange(30) % 3)
    write_json(split / "summary.json", {"kind": "image", "task": "classification", "classes": ["a", "b", "c"]})

    stats = normalise(split, tmp_path / "norm")["inputs"]
    train = raw["train"] / 255.0
    assert np.allclose(stats["mean"], train.mean(axis=(0, 2, 3)))
    assert np.allclose(stats["std"], train.std(axis=(0, 2, 3)))
    assert read_json(tmp_path / "norm" / "stats.json")["inputs"]["std"] == stats["std"]
    normalised = {s: as_the_net_reads(split, tmp_path / "norm", s) for s in ranges}
    assert np.allclose(normalised["train"].mean(axis=(0, 2, 3)), 0, atol=1e-5)
    assert np.allclose(normalised["train"].std(axis=(0, 2, 3)), 1, atol=1e-4)
    # Val keeps its own, wider spread in train's units: several train standard deviations.
    assert (normalised["val"].std(axis=(0, 2, 3)) > 5).all()


def test_table_columns_are_scaled_by_the_training_split_alone(tmp_path):
    rng = np.random.default_rng(0)
    split = tmp_path / "split"
    split.mkdir()
    # Columns of very different ranges; val and test sit far from train.
    shift = {"train": 0.0, "val": 50.0, "test": -30.0}
    raw = {}
    for name, offset in shift.items():
        raw[name] = (rng.normal(size=(40, 3)) * [1.0, 1000.0, 0.001] + [5.0 + offset, 2e4, 0.0]).astype(np.float32)
        save_split(split, name, raw[name], rng.normal(size=40).astype(np.float32))
    summary = {"kind": "table", "task": "regression", "classes": [], "target": "t", "features": ["a", "b", "c"]}
    write_json(split / "summary.json", summary)

    stats = normalise(split, tmp_path / "norm")
    assert stats["task"] == "regression" and stats["inputs"]["features"] == ["a", "b", "c"]
    assert sorted(p.name for p in (tmp_path / "norm").iterdir()) == ["stats.json"]
    assert np.allclose(stats["inputs"]["mean"], raw["train"].astype(np.float64).mean(axis=0))
    assert np.allclose(stats["inputs"]["std"], raw["train"].astype(np.float64).std(axis=0))
    normalised = {s: as_the_net_reads(split, tmp_path / "norm", s) for s in shift}
    assert np.allclose(normalised["train"].mean(axis=0), 0, atol=1e-5)
    assert np.allclose(normalised["train"].std(axis=0), 1, atol=1e-4)
    assert normalised["val"][:, 0].mean() > 40  # val's shift, in train's units


def text_split(where, docs: dict[str, list[list[str]]]) -> list[str]:
    """A text split directory as the split stage writes it: dataset ids over a word list."""
    words = [*RESERVED_WORDS, *sorted({w for split in docs.values() for d in split for w in d})]
    index = {w: i for i, w in enumerate(words)}
    where.mkdir()
    for split, documents in docs.items():
        length = max(len(d) for d in documents) + 1
        x = np.zeros((len(documents), length), dtype=np.int32)
        for i, d in enumerate(documents):
            x[i, : len(d) + 1] = [START, *(index[w] for w in d)]
        save_split(where, split, x, np.arange(len(documents)) % 2)
    write_json(where / "words.json", words)
    write_json(where / "summary.json", {"kind": "text", "task": "classification", "classes": ["neg", "pos"]})
    return words


def test_text_vocabulary_is_the_most_frequent_training_words(tmp_path):
    docs = {
        "train": [["good", "good", "film"], ["bad", "film", "good"], ["dull", "film"]],
        "val": [["great", "great", "great", "film"], ["good"]],  # "great": frequent, but not in train
        "test": [["film", "dull", "awful", "good"], ["bad"]],
    }
    text_split(tmp_path / "split", docs)
    # Room for two words: good (3 in train) and film (3): ties go to the lower dataset id, and
    # bad and dull (1 each) are left out, as is great (val only).
    stats = normalise(tmp_path / "split", tmp_path / "norm", num_words=FIRST_WORD + 2)
    vocabulary = stats["inputs"]["vocabulary"]
    assert vocabulary == [*RESERVED_WORDS, "film", "good"]
    test = load_split(tmp_path / "norm", "test")["x"]
    assert [decode(row, vocabulary) for row in test] == ["film <unk> <unk> good", "<unk>"]
    val = load_split(tmp_path / "norm", "val")["x"]
    assert decode(val[0], vocabulary) == "<unk> <unk> <unk> film"
    assert {a.shape[1] for a in (test, val, load_split(tmp_path / "norm", "train")["x"])} == {5}
    assert stats["inputs"]["longest"] == 4  # words of the longest document: predict cuts there


def test_text_documents_are_cut_to_max_length_words(tmp_path):
    docs = {"train": [["a", "b", "c", "d"], ["a"]], "val": [["b", "c"]], "test": [["d", "c", "b", "a"]]}
    text_split(tmp_path / "split", docs)
    stats = normalise(tmp_path / "split", tmp_path / "norm", max_length=2)
    test = load_split(tmp_path / "norm", "test")["x"]
    assert test.shape == (1, 3) and decode(test[0], stats["inputs"]["vocabulary"]) == "d c"


def test_the_nets_preprocessing_leaves_its_input_as_it_was_and_computes_the_written_out_formula():
    """Preprocessing works in place on its own float copy: table rows (already float32) and
    uint8 images come back unchanged, and the result is bit for bit (x / 255 - mean) / std."""
    rng = np.random.default_rng(0)
    table = {"kind": "table", "features": ["a", "b"], "mean": [0.5, -2.0], "std": [3.0, 0.25]}
    image = {"kind": "image", "shape": [3, 4, 4], "mean": [0.1, 0.5, 0.9], "std": [0.2, 0.3, 0.7]}
    for inputs, raw in (
        (table, torch.from_numpy(rng.normal(size=(50, 2)).astype(np.float32))),
        (image, torch.from_numpy(rng.integers(0, 256, (50, 3, 4, 4), dtype=np.uint8))),
    ):
        net = Predictor({"name": "mlp", "hidden": [2], "dropout": 0.0}, "classification", ["a", "b"], inputs)
        kept = raw.clone()
        got = net.preprocess(raw)
        assert torch.equal(raw, kept)  # the split's rows on the device are not normalised in place
        mean, std = torch.tensor(inputs["mean"]), torch.tensor(inputs["std"])
        if inputs["kind"] == "image":
            expected = (raw.float() / 255.0 - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
        else:
            expected = (raw.float() - mean) / std
        assert torch.equal(got, expected)


def test_table_and_text_statistics_stream_the_training_split_and_do_not_depend_on_the_blocks(tmp_path, monkeypatch):
    """Column statistics, word counts and the encoded splits are computed a block at a time, never
    from a whole split: blocks of one row give the same words and ids as one block, column
    statistics to within rounding, and a table of one block numpy's own mean and std to the bit."""
    from reprovision.data import normalise as module
    from reprovision.data.shards import Shards

    rng = np.random.default_rng(0)
    table = tmp_path / "table"
    for name in ("train", "val", "test"):
        rows = (rng.normal(size=(300, 3)) * [1.0, 1000.0, 0.001] + [5.0, 2e4, 0.0]).astype(np.float32)
        save_split(table, name, rows, rng.normal(size=300).astype(np.float32), shard_bytes=12 * 40)
    write_json(table / "summary.json", {"kind": "table", "task": "regression", "classes": [], "target": "t",
                                        "features": ["a", "b", "c"]})  # fmt: skip
    docs = [[str(w) for w in rng.zipf(1.5, size=rng.integers(1, 30)) if w < 60] or ["1"] for _ in range(120)]
    text_split(tmp_path / "text", {"train": docs[:80], "val": docs[80:100], "test": docs[100:]})

    whole = load_split(table, "train")["x"].astype(np.float64)
    one_block = normalise(table, tmp_path / "t1")["inputs"]
    assert (one_block["mean"], one_block["std"]) == (whole.mean(axis=0).tolist(), whole.std(axis=0).tolist())
    text_one = normalise(tmp_path / "text", tmp_path / "w1", num_words=FIRST_WORD + 20)["inputs"]

    def never_whole(self):
        raise AssertionError(f"{self.dir} read whole")

    monkeypatch.setattr(Shards, "inputs", never_whole)
    monkeypatch.setattr(module, "CHUNK_BYTES", 1)  # a block is one row
    rows = normalise(table, tmp_path / "t2")["inputs"]
    assert np.allclose(rows["mean"], one_block["mean"], rtol=1e-13)
    assert np.allclose(rows["std"], one_block["std"], rtol=1e-12)
    assert normalise(tmp_path / "text", tmp_path / "w2", num_words=FIRST_WORD + 20)["inputs"] == text_one
    monkeypatch.undo()  # load_split reads a split whole
    for split in ("train", "val", "test"):
        a, b = load_split(tmp_path / "w1", split), load_split(tmp_path / "w2", split)
        assert np.array_equal(a["x"], b["x"]) and np.array_equal(a["y"], b["y"])
