"""The LightningDataModule over the normalised splits (in-memory tensors)."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from reprovision.files import load_arrays, read_json

# Which splits each Lightning stage reads: fitting never loads the test split.
SPLITS_FOR = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}


class NormalisedDataModule(pl.LightningDataModule):
    def __init__(self, data_dir: str | Path, batch_size: int, num_workers: int = 0) -> None:
        super().__init__()
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.stats = read_json(self.data_dir / "stats.json")
        self.datasets: dict[str, TensorDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        for split in SPLITS_FOR.get(stage or "", ("train", "val", "test")):
            if split not in self.datasets:
                arrays = load_arrays(self.data_dir / f"{split}.npz")
                self.datasets[split] = TensorDataset(torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"]))

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
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
