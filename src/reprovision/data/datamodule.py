"""The LightningDataModule over the splits (the split stage's shards: uint8 images, table rows,
or the normalise stage's token ids).

Two ways to batch them (`data.loader`; `auto`, the default, picks `device` while the train and
val splits hold at most `data.device_max_mb` and `dataloader` past it: `chosen_loader`):
- `device`: each split is moved to the training device once; a batch is one index into it, so
  a step costs no per-image work, no host-to-device copy and no host sync. The batches come from
  the same samplers as a DataLoader's, drawn once per epoch.
- `dataloader`: a torch DataLoader reading each batch's rows from the split's shards on disk
  (`num_workers` worker processes), copied to the device per step: no split is held in memory,
  for data too large for the device or the host.

`batch_size` is the global batch: under data-parallel training each of N processes takes
batch_size / N images per step, dealt from one global batch (`sampling.EveryExampleOnce`: every
example once an epoch), so the optimiser sees the same batch size (and the learning rate means
the same) on 1 process or N. Validation and test use
`eval_batch_size` per process: the batch size does not change what they measure.

Every batch is normalised after it reaches the device, by the module's `preprocess` (the
training split's statistics, as predict and the served model do): no float copy of a split
exists, and the device holds a quarter of the bytes a float32 copy would. Training batches are
then augmented (`crop_padding`, `flip`), in whole batches: validation, test and predict batches
never are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    TensorDataset,
)

from reprovision.data.augment import flip_crop, resized_crop
from reprovision.data.normalise import net_inputs, net_shards
from reprovision.data.sampling import EveryExampleOnce
from reprovision.data.shards import Shards
from reprovision.errors import ConfigError
from reprovision.files import read_json

# Which splits each Lightning stage reads: fitting never loads the test split.
SPLITS_FOR = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}


class Batches:
    """A split's batches in a sampler's order, from device-resident tensors (`source` a
    TensorDataset: each batch one gather) or from the shards (`source` a ShardRows: a DataLoader
    with `num_workers` processes reads each batch's rows). `sampler` yields each batch's rows; the
    epoch's batches are drawn at its start, from the torch RNG as it stands, the same way on both
    paths. `sampler` is public so Lightning calls its `set_epoch`, as it does a DataLoader's.

    Resumable mid-epoch (Lightning keeps `state_dict()` in every checkpoint): the RNG state the
    epoch's order was drawn from and the batches the trainer has taken (`taken()`). Loaded from a
    checkpoint written mid-epoch, the next epoch drawn is that epoch again, less its taken batches,
    and the RNG is left as the checkpoint found it."""

    batch_sampler = None  # what Lightning inspects on a DataLoader: here `sampler` yields whole batches

    def __init__(
        self,
        source: TensorDataset | ShardRows,
        sampler: Sampler[list[int]],
        num_workers: int = 0,
        pin_memory: bool = False,
        taken: Callable[[], int] | None = None,
    ) -> None:
        self.source, self.sampler = source, sampler
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.taken = taken or (lambda: len(self))  # a split that is never resumed mid-epoch
        self.drawn_from: torch.Tensor | None = None  # the RNG state this epoch's order came from
        self.resume: dict | None = None

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        skip, now = 0, torch.get_rng_state()
        if self.resume is not None:
            torch.set_rng_state(self.resume["rng"])
            skip = self.resume["taken"]
        self.drawn_from, self.resume = torch.get_rng_state(), None
        batches = list(self.sampler)[skip:]
        if skip:
            torch.set_rng_state(now)  # as the checkpoint left it: the rest of the epoch draws the same
        if isinstance(self.source, ShardRows):
            yield from DataLoader(
                self.source,
                batch_sampler=batches,
                collate_fn=as_read,
                num_workers=self.num_workers,
                pin_memory=self.pin_memory,
                generator=torch.Generator(),  # its worker seeds: the run's RNG is not drawn from
            )
            return
        x, y = self.source.tensors
        order = torch.tensor([row for batch in batches for row in batch], dtype=torch.long)
        for idx in order.to(x.device, non_blocking=True).split([len(b) for b in batches]):
            yield x[idx], y[idx]

    def state_dict(self) -> dict:
        return {"rng": self.drawn_from, "taken": self.taken()}

    def load_state_dict(self, state: dict) -> None:
        if state["rng"] is not None and 0 < state["taken"] < len(self):  # else the epoch had ended
            self.resume = state


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
        crop_scale: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        self.split_dir, self.data_dir = Path(split_dir), Path(data_dir)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers = num_workers
        self.seed = seed  # the training shards' shuffle under data-parallel training
        self.crop_padding, self.flip, self.crop_scale = crop_padding, flip, crop_scale
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

    def _loader(self, split: str) -> Batches:
        dataset, world = self.datasets[split], self.trainer.world_size if self.trainer else 1
        train = split == "train"
        if world == 1:
            rows = RandomSampler(dataset) if train else SequentialSampler(dataset)
            sampler = BatchSampler(rows, self.batch_size if train else self.eval_batch_size, drop_last=False)
        else:
            if train and self.batch_size % world:
                raise ConfigError(
                    f"data.batch_size={self.batch_size} does not split over {world} processes; "
                    f"use a multiple of {world}"
                )
            if len(dataset) < world:  # a process without a batch would wait forever for the others
                raise ConfigError(f"the {split} split has {len(dataset)} images, fewer than {world} processes")
            rank = self.trainer.global_rank
            # Every example once an epoch: training in global batches dealt out across the
            # processes (each takes the same steps), validation in unpadded shares.
            if train:
                sampler = EveryExampleOnce(len(dataset), world, rank, self.batch_size // world, self.seed)
            else:
                rows = UnrepeatedDistributedSampler(dataset, world, rank, shuffle=False)
                sampler = BatchSampler(rows, self.eval_batch_size, drop_last=False)
        trainer = self.trainer
        pin = self.loader == "dataloader" and trainer is not None and trainer.strategy.root_device.type == "cuda"
        taken = (lambda: trainer.fit_loop.epoch_loop.batch_progress.current.ready) if train and trainer else None
        return Batches(dataset, sampler, self.num_workers, pin, taken)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        # Normalise every batch where it now lives (GPU or CPU); augment whole training batches,
        # never val/test.
        x, *rest = batch
        x = self.trainer.lightning_module.preprocess(x)
        if self.trainer.training and self.crop_scale:
            x = resized_crop(x, self.crop_scale)
        if self.trainer.training and (self.crop_padding or self.flip):
            x = flip_crop(x, self.crop_padding, self.flip)
        return (x, *rest)

    def train_dataloader(self) -> Batches:
        return self._loader("train")

    def val_dataloader(self) -> Batches:
        return self._loader("val")

    def test_dataloader(self) -> Batches:
        return self._loader("test")

    def predict_dataloader(self) -> Batches:
        return self._loader("test")
