"""What a stage's process holds while it works: the DVC workspace's own lock."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from reprovision.errors import BadInput

HOLDER_ENV = "REPROVISION_HOLDS_DVC_LOCK"  # set for this process's children (DDP ranks): the lock is held
RANK_ENVS = ("RANK", "LOCAL_RANK", "SLURM_PROCID")  # torchrun's, Lightning's and SLURM's: rank 0 holds it
WAIT_S = 10  # another DVC command (a `dvc status`) may hold the lock for a moment


def _workspace_lock() -> Path | None:
    """The repo lock of the DVC workspace this stage runs in (its working directory, a queued
    experiment's copy included): the file DVC's own lock has left there. None outside a workspace,
    or where there is no such file: DVC's hard-link lock (core.hardlink_lock, at any config level)
    deletes its file when it lets go, and a file made here would read to it as held forever."""
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / ".dvc").is_dir():
            lock = folder / ".dvc" / "tmp" / "lock"
            return lock if lock.is_file() else None
    return None


@contextlib.contextmanager
def hold_dvc_lock() -> Iterator[None]:
    """Hold the workspace's DVC lock while a stage runs under DVC.

    DVC releases its repo lock while a stage's command runs, so a second `dvc exp run` in the same
    workspace would take it, write its overrides into params.yaml (which this run's later stages
    read) and only then fail on the stage lock. Holding the lock here refuses that second command
    before it writes anything ("Unable to acquire lock"), as DVC refuses it between stages."""
    other_rank = any(os.environ.get(name, "0") != "0" for name in RANK_ENVS)
    under_dvc = os.environ.get("DVC_STAGE") and not os.environ.get(HOLDER_ENV) and not other_rank
    lock_path = _workspace_lock() if under_dvc else None
    if lock_path is None:
        yield
        return
    import zc.lockfile  # DVC's own lock implementation (its default, core.hardlink_lock=false)

    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            lock = zc.lockfile.LockFile(str(lock_path))
            break
        except zc.lockfile.LockError:
            if time.monotonic() > deadline:
                raise BadInput(
                    f"another DVC command holds {lock_path} in this workspace: run one experiment at a time "
                    "here, and queue the others with `dvc exp run --queue`"
                ) from None
            time.sleep(0.2)
    os.environ[HOLDER_ENV] = "1"
    try:
        yield
    finally:
        os.environ.pop(HOLDER_ENV, None)
        lock.close()
