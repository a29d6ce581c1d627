"""The LightningDataModule over the splits (in-memory tensors, as the split stage wrote them:
uint8 images, table rows, or the normalise stage's token ids).

Two ways to batch them (`data.loader`; `auto`, the default, picks `device` while the train and
val splits hold at most `data.device_max_mb` and `dataloader` past it: `chosen_loader`):
- `device` (default): each split is moved to the training device once; a batch is one index
  into it, so a step costs no per-image work, no host-to-device copy and no host sync. The
  shuffle order comes from the same samplers as a DataLoader's, computed once per epoch.
- `dataloader`: a torch DataLoader reading each batch's rows from the split's shards on disk
  (`num_workers` worker processes), copied to the device per step: no split is held in memory,
  for data too large for the device or the host.

`batch_size` is the global batch: under data-parallel training each of N processes takes
batch_size / N images per step from its own shard, so the optimiser sees the same batch size
(and the learning rate means the same) on 1 process or N. Validation and test use
`eval_batch_size` per process: the batch size does not change what they measure.

Every batch is normalised after it reaches the device, by the module's `preprocess` (the
training split's statistics, as predict and the served model do): no float copy of a split
exists, and the device holds a quarter of the bytes a float32 copy would. Training batches are
then augmented (`crop_padding`, `flip`), in whole batches: validation, test and predict batches
never are.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    TensorDataset,
)

from reprovision.data.augment import flip_crop
from reprovision.data.normalise import net_inputs, net_shards
from reprovision.data.shards import Shards
from reprovision.errors import ConfigError
from reprovision.files import read_json

# Which splits each Lightning stage reads: fitting never loads the test split.
SPLITS_FOR = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}


class DeviceBatches:
    """Batches of device-resident tensors in a sampler's order: one index copy per epoch, then
    each batch is a slice of it and one gather. `sampler` is public so Lightning calls its
    `set_epoch`, as it does a DataLoader's."""

    batch_sampler = None  # what Lightning inspects on a DataLoader: here batches are slices

    def __init__(self, x: torch.Tensor, y: torch.Tensor, sampler: Sampler, batch_size: int) -> None:
        self.x, self.y, self.sampler, self.batch_size = x, y, sampler, batch_size

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.tensor(list(self.sampler), dtype=torch.long).to(self.x.device, non_blocking=True)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield self.x[idx], self.y[idx]


def chosen_loader(loader: str, max_mb: int, split_dir: Path, data_dir: Path, kind: str) -> str:
    """`loader`, with `auto` made `device` or `dataloader` by the size of the train and val splits."""
    if loader != "auto":
        return loader
    held = sum(s.row_bytes * len(s) for s in (net_shards(split_dir, data_dir, p, kind) for p in ("train", "val")))
    return "device" if held <= max_mb * 2**20 else "dataloader"


class ShardRows(Dataset):
    """A split's rows on disk: a batch of rows is read in one call (`__getitems__`, which a
    DataLoader prefers), as (inputs, targets) tensors."""

    def __init__(self, shards: Shards) -> None:
        self.shards = shards

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, row: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.__getitems__([row])
        return x[0], y[0]

    def __getitems__(self, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.shards.read(rows)), torch.from_numpy(self.shards.y[rows])


def as_read(batch):
    """The DataLoader's collate function for `ShardRows`: its batches come whole."""
    return batch


class SplitDataModule(pl.LightningDataModule):
    """The splits in `split_dir`, with the normalise stage's fit (stats.json) in `data_dir`."""

    def __init__(
        self,
        split_dir: str | Path,
        data_dir: str | Path,
        batch_size: int,
        num_workers: int = 0,
        seed: int = 0,
        loader: str = "device",
        eval_batch_size: int = 1024,
        crop_padding: int = 0,
        flip: bool = False,
        device_max_mb: int = 256,
    ) -> None:
        super().__init__()
        self.split_dir, self.data_dir = Path(split_dir), Path(data_dir)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers = num_workers
        self.seed = seed  # the training shards' shuffle under data-parallel training
        self.crop_padding, self.flip = crop_padding, flip
        self.stats = read_json(self.data_dir / "stats.json")
        self.loader = chosen_loader(loader, device_max_mb, self.split_dir, self.data_dir, self.stats["inputs"]["kind"])
        self.datasets: dict[str, TensorDataset | ShardRows] = {}

    def setup(self, stage: str | None = None) -> None:
        device = self.trainer.strategy.root_device if self.trainer and self.loader == "device" else None
        for split in SPLITS_FOR.get(stage or "", ("train", "val", "test")):
            if split in self.datasets:
                continue
            kind = self.stats["inputs"]["kind"]
            if self.loader == "dataloader":
                self.datasets[split] = ShardRows(net_shards(self.split_dir, self.data_dir, split, kind))
            else:
                arrays = net_inputs(self.split_dir, self.data_dir, split, kind)
                x, y = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"])
                self.datasets[split] = TensorDataset(x.to(device), y.to(device)) if device else TensorDataset(x, y)

    def _loader(self, split: str) -> DataLoader | DeviceBatches:
        dataset, world = self.datasets[split], self.trainer.world_size if self.trainer else 1
        train = split == "train"
        if world == 1:
            batch_size = self.batch_size if train else self.eval_batch_size
            sampler = RandomSampler(dataset) if train else SequentialSampler(dataset)
        else:
            if train and self.batch_size % world:
                raise ConfigError(
                    f"data.batch_size={self.batch_size} does not split over {world} processes; "
                    f"use a multiple of {world}"
                )
            if len(dataset) < world:  # a process without a batch would wait forever for the others
                raise ConfigError(f"the {split} split has {len(dataset)} images, fewer than {world} processes")
            rank = self.trainer.global_rank
            batch_size = self.batch_size // world if train else self.eval_batch_size
            # Training shards are padded to equal length (every process must take the same number
            # of steps); validation shards are not, so each val image is counted exactly once.
            if train:
                sampler = DistributedSampler(dataset, world, rank, shuffle=True, seed=self.seed)
            else:
                sampler = UnrepeatedDistributedSampler(dataset, world, rank, shuffle=False)
        if self.loader == "device":
            return DeviceBatches(*dataset.tensors, sampler, batch_size)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=as_read,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.trainer is not None and self.trainer.strategy.root_device.type == "cuda",
        )

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        # Normalise every batch where it now lives (GPU or CPU); augment whole training batches,
        # never val/test.
        x, *rest = batch
        x = self.trainer.lightning_module.preprocess(x)
        if self.trainer.training and (self.crop_padding or self.flip):
            x = flip_crop(x, self.crop_padding, self.flip)
        return (x, *rest)

    def train_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader("test")
