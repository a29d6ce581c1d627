"""The two batch paths over the normalised splits: the same images, batch sizes and order rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprovision.data.datamodule import DeviceBatches, NormalisedDataModule
from reprovision.files import save_arrays, write_json


@pytest.fixture
def numbered(tmp_path):
    """Normalised splits whose every image holds its own index, so batches can be traced."""
    for split, n in (("train", 70), ("val", 25), ("test", 25)):
        x = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None, None], (n, 1, 2, 2)).copy()
        save_arrays(tmp_path / f"{split}.npz", x=x, y=np.arange(n) % 3)
    write_json(tmp_path / "stats.json", {"classes": ["a", "b", "c"], "image_shape": [1, 2, 2], "mean": [0], "std": [1]})
    return tmp_path


def batches(numbered, loader: str, split: str) -> list[torch.Tensor]:
    dm = NormalisedDataModule(numbered, batch_size=16, loader=loader, eval_batch_size=10)
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


def test_validation_and_test_batches_are_in_order_and_the_same_on_both_paths(numbered):
    for split in ("val", "test"):
        device, dataloader = batches(numbered, "device", split), batches(numbered, "dataloader", split)
        assert [len(b) for b in device] == [10, 10, 5]  # eval_batch_size, not batch_size
        assert [b.tolist() for b in device] == [b.tolist() for b in dataloader]
        assert torch.cat(device).tolist() == list(range(25))


def test_device_batches_are_gathers_of_one_index_per_epoch():
    x, y = torch.arange(10.0), torch.arange(10) * 2
    got = list(DeviceBatches(x, y, [3, 1, 4, 0, 2], 2))
    assert [b[0].tolist() for b in got] == [[3.0, 1.0], [4.0, 0.0], [2.0]]
    assert [b[1].tolist() for b in got] == [[6, 2], [8, 0], [4]]
    assert len(DeviceBatches(x, y, list(range(10)), 4)) == 3
