"""Which rows each batch holds, per epoch and per process: what both batch paths (device and
shards) iterate.

Under data-parallel training every process must take the same number of steps, and torch's
DistributedSampler gets there by padding each process's share with rows of the others: some
examples are trained on twice an epoch. `EveryExampleOnce` instead deals each global batch of one
seeded permutation out across the processes, so every example is in exactly one process's batch
once per epoch and every process takes one step per global batch; a last global batch too small
to give each process a row joins the one before it. The processes' batches then differ in size
by at most one row (DDP averages their gradients with equal weights: in those steps an example
counts a little more or less than in the others).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EveryExampleOnce(Sampler[list[int]]):
    """Process `rank` of `world`'s batches of `n` rows for an epoch (`set_epoch`, as Lightning
    calls it): the global batches (`batch_size` a process, `batch_size * world` in all) of a
    permutation seeded by `seed` and the epoch, each dealt out round-robin across the processes."""

    def __init__(self, n: int, world: int, rank: int, batch_size: int, seed: int) -> None:
        if n < world:
            raise ValueError(f"{n} rows cannot give each of {world} processes one")
        self.n, self.world, self.rank, self.batch_size, self.seed = n, world, rank, batch_size, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def bounds(self) -> list[int]:
        """Where the global batches start, and the end: the same for every epoch and process."""
        starts = list(range(0, self.n, self.batch_size * self.world))
        if len(starts) > 1 and self.n - starts[-1] < self.world:
            starts.pop()  # too small to deal one row to every process: joins the batch before
        return [*starts, self.n]

    def __len__(self) -> int:
        return len(self.bounds()) - 1

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.n, generator=generator).tolist()
        bounds = self.bounds()
        for start, end in itertools.pairwise(bounds):
            yield order[start:end][self.rank :: self.world]
