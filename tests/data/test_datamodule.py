"""The batch paths over the splits: the same images, batch sizes and order rules; each loader its
own split; every batch normalised on arrival, training batches alone augmented."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import TensorDataset

from reprovision.data.datamodule import Batches, ShardRows, SplitDataModule, chosen_loader
from reprovision.data.shards import save_split
from reprovision.files import write_json
from reprovision.models.module import Model

# Where each split's image numbers start: a loader that hands out another split shows.
FIRST = {"train": 0, "val": 1000, "test": 2000}


@pytest.fixture
def numbered(tmp_path):
    """Splits whose every image holds its own number, so batches can be traced."""
    for split, n in (("train", 70), ("val", 25), ("test", 25)):
        numbers = FIRST[split] + np.arange(n, dtype=np.float32)
        x = np.broadcast_to(numbers[:, None, None, None], (n, 1, 2, 2)).copy()
        save_split(tmp_path, split, x, np.arange(n) % 3)
    write_json(
        tmp_path / "stats.json", {"task": "classification", "classes": ["a", "b", "c"], "inputs": {"kind": "image"}}
    )
    return tmp_path


def batches(numbered, loader: str, split: str) -> list[torch.Tensor]:
    dm = SplitDataModule(numbered, numbered, batch_size=16, loader=loader, eval_batch_size=10)
    dm.setup()
    return [x[:, 0, 0, 0].long() for x, _ in getattr(dm, f"{split}_dataloader")()]


@pytest.mark.parametrize("loader", ["device", "dataloader"])
def test_a_training_epoch_is_a_fresh_permutation_in_batches_of_batch_size(numbered, loader):
    torch.manual_seed(0)
    first, second = batches(numbered, loader, "train"), batches(numbered, loader, "train")
    assert [len(b) for b in first] == [16, 16, 16, 16, 6]
    assert sorted(torch.cat(first).tolist()) == list(range(70))  # every image once
    assert torch.cat(first).tolist() != torch.cat(second).tolist()  # reshuffled each epoch
    assert torch.cat(first).tolist() != list(range(70))


def test_validation_test_and_predict_batches_are_their_own_split_in_order_on_both_paths(numbered):
    # predict is what the evaluate stage scores: the test split.
    for loader, split in (("val", "val"), ("test", "test"), ("predict", "test")):
        device, dataloader = batches(numbered, "device", loader), batches(numbered, "dataloader", loader)
        assert [len(b) for b in device] == [10, 10, 5]  # eval_batch_size, not batch_size
        assert [b.tolist() for b in device] == [b.tolist() for b in dataloader]
        assert torch.cat(device).tolist() == list(range(FIRST[split], FIRST[split] + 25)), loader


def test_device_batches_are_gathers_of_one_index_per_epoch():
    x, y = torch.arange(10.0), torch.arange(10) * 2
    got = list(Batches(TensorDataset(x, y), [[3, 1], [4, 0], [2]]))
    assert [b[0].tolist() for b in got] == [[3.0, 1.0], [4.0, 0.0], [2.0]]
    assert [b[1].tolist() for b in got] == [[6, 2], [8, 0], [4]]
    assert len(Batches(TensorDataset(x, y), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]])) == 3


def test_batches_are_normalised_on_arrival_and_training_batches_alone_flipped(tmp_path):
    x = (np.arange(40 * 16) % 251).astype(np.uint8).reshape(40, 1, 4, 4)  # pixels distinct in an image: a flip shows
    for split in ("train", "val", "test"):
        save_split(tmp_path, split, x, np.arange(40) % 3)
    inputs = {"kind": "image", "shape": [1, 4, 4], "mean": [0.25], "std": [0.5]}
    write_json(tmp_path / "stats.json", {"task": "classification", "classes": ["a", "b", "c"], "inputs": inputs})
    dm = SplitDataModule(tmp_path, tmp_path, batch_size=40, eval_batch_size=40, flip=True)
    dm.trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    net = {"name": "mlp", "hidden": [2], "dropout": 0.0}
    dm.trainer.strategy.connect(Model(net, {}, "classification", ["a", "b", "c"], inputs))
    dm.setup("fit")
    stored, labels = next(iter(dm.train_dataloader()))
    assert stored.dtype == torch.uint8  # the split's bytes, on the device a quarter of float32's
    normalised = (stored.float() / 255.0 - 0.25) / 0.5
    torch.manual_seed(0)
    dm.trainer.training = True  # as in a training epoch, after Lightning moved the batch
    augmented, same_labels = dm.on_after_batch_transfer((stored, labels), 0)
    assert torch.equal(same_labels, labels)
    mirrored = [torch.equal(a, s.flip(2)) for a, s in zip(augmented, normalised, strict=True)]
    kept = [torch.equal(a, s) for a, s in zip(augmented, normalised, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True)) and any(mirrored)

    dm.trainer.validating = True
    val = next(iter(dm.val_dataloader()))
    seen, _ = dm.on_after_batch_transfer(val, 0)
    expected = (torch.from_numpy(x).float() / 255.0 - 0.25) / 0.5
    assert torch.equal(seen, expected)  # the stored images, normalised, in order


@pytest.mark.parametrize(("val_rows", "chosen"), [(256, "device"), (257, "dataloader")])
def test_auto_keeps_splits_up_to_device_max_mb_on_the_device_and_streams_larger_ones(tmp_path, val_rows, chosen):
    """768 training and 256 validation images of 1,024 bytes are 1 MiB: on the device at
    data.device_max_mb=1; one image more and every batch is read from the shards."""
    for split, n in (("train", 768), ("val", val_rows), ("test", 5)):
        save_split(tmp_path, split, np.zeros((n, 1, 32, 32), np.uint8), np.arange(n) % 3)
    write_json(
        tmp_path / "stats.json", {"task": "classification", "classes": ["a", "b", "c"], "inputs": {"kind": "image"}}
    )
    dm = SplitDataModule(tmp_path, tmp_path, batch_size=16, loader="auto", device_max_mb=1)
    dm.setup("fit")
    assert dm.loader == chosen
    assert isinstance(dm.datasets["train"], ShardRows) == (chosen == "dataloader")  # streamed: no split in memory
    assert chosen_loader("device", 0, tmp_path, tmp_path, "image") == "device"  # an explicit choice stands


def test_training_batches_alone_get_resized_crops(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (20, 3, 16, 16), dtype=np.uint8)
    for split in ("train", "val", "test"):
        save_split(tmp_path, split, x, np.arange(20) % 3)
    inputs = {"kind": "image", "shape": [3, 16, 16], "mean": [0.5] * 3, "std": [0.25] * 3}
    write_json(tmp_path / "stats.json", {"task": "classification", "classes": ["a", "b", "c"], "inputs": inputs})
    dm = SplitDataModule(tmp_path, tmp_path, batch_size=20, eval_batch_size=20, crop_scale=(0.25, 0.5))
    dm.trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    net = {"name": "mlp", "hidden": [2], "dropout": 0.0}
    dm.trainer.strategy.connect(Model(net, {}, "classification", ["a", "b", "c"], inputs))
    dm.setup("fit")
    stored, labels = next(iter(dm.val_dataloader()))
    normalised = (stored.float() / 255.0 - 0.5) / 0.25
    dm.trainer.training = True
    cropped, _ = dm.on_after_batch_transfer((stored, labels), 0)
    assert cropped.shape == normalised.shape and not any(
        torch.equal(c, n) for c, n in zip(cropped, normalised, strict=True)
    )
    dm.trainer.validating = True
    seen, _ = dm.on_after_batch_transfer((stored, labels), 0)
    assert torch.equal(seen, normalised)  # validation sees the images whole
