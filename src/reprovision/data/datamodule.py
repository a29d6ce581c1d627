"""The LightningDataModule over the normalised splits (in-memory tensors).

`batch_size` is the global batch: under data-parallel training each of N processes takes
batch_size / N images per step from its own shard, so the optimiser sees the same batch size
(and the learning rate means the same) on 1 process or N.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from reprovision.errors import ConfigError
from reprovision.files import load_arrays, read_json

# Which splits each Lightning stage reads: fitting never loads the test split.
SPLITS_FOR = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}


class NormalisedDataModule(pl.LightningDataModule):
    def __init__(self, data_dir: str | Path, batch_size: int, num_workers: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed  # the training shards' shuffle under data-parallel training
        self.stats = read_json(self.data_dir / "stats.json")
        self.datasets: dict[str, TensorDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        for split in SPLITS_FOR.get(stage or "", ("train", "val", "test")):
            if split not in self.datasets:
                arrays = load_arrays(self.data_dir / f"{split}.npz")
                self.datasets[split] = TensorDataset(torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"]))

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        dataset, world = self.datasets[split], self.trainer.world_size if self.trainer else 1
        if world == 1:
            sampler, batch_size = None, self.batch_size
        else:
            if self.batch_size % world:
                raise ConfigError(
                    f"data.batch_size={self.batch_size} does not split over {world} processes; "
                    f"use a multiple of {world}"
                )
            if len(dataset) < world:  # a process without a batch would wait forever for the others
                raise ConfigError(f"the {split} split has {len(dataset)} images, fewer than {world} processes")
            rank, batch_size, shuffle = self.trainer.global_rank, self.batch_size // world, False
            # Training shards are padded to equal length (every process must take the same number
            # of steps); validation shards are not, so each val image is counted exactly once.
            if split == "train":
                sampler = DistributedSampler(dataset, world, rank, shuffle=True, seed=self.seed)
            else:
                sampler = UnrepeatedDistributedSampler(dataset, world, rank, shuffle=False)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")
