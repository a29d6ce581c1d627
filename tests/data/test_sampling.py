"""Data-parallel batches: every example once an epoch, the same steps on every process."""

from __future__ import annotations

import pytest

from reprovision.data.sampling import EveryExampleOnce


@pytest.mark.parametrize(
    ("n", "world", "batch_size"), [(1437, 2, 32), (64, 2, 32), (65, 2, 32), (129, 4, 8), (7, 3, 5), (3, 3, 1)]
)
def test_every_example_is_in_one_process_batch_once_an_epoch_and_every_process_takes_the_same_steps(
    n, world, batch_size
):
    for epoch in (0, 1):
        shares = []
        for rank in range(world):
            sampler = EveryExampleOnce(n, world, rank, batch_size, seed=42)
            sampler.set_epoch(epoch)
            shares.append(list(sampler))
        assert len({len(s) for s in shares}) == 1 and len(shares[0]) == len(sampler)  # the same steps
        seen = [row for share in shares for batch in share for row in batch]
        assert sorted(seen) == list(range(n))  # every example, once
        for step in zip(*shares, strict=True):
            sizes = [len(batch) for batch in step]
            assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1  # no process idle, none far behind


def test_each_epoch_is_a_fresh_seeded_permutation():
    def epoch_rows(epoch: int, seed: int = 42) -> list[int]:
        sampler = EveryExampleOnce(100, 2, 0, 10, seed)
        sampler.set_epoch(epoch)
        return [row for batch in sampler for row in batch]

    assert epoch_rows(0) == epoch_rows(0)  # the same on every run and machine
    assert epoch_rows(0) != epoch_rows(1) and epoch_rows(0) != epoch_rows(0, seed=7)
