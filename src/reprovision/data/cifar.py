"""CIFAR-10: the official python batches (pickles, read only once their md5 matches)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reprovision.data.archives import Limits, iter_members
from reprovision.data.pickles import unpickle_arrays
from reprovision.data.raw import RawData, RawFile
from reprovision.data.verify import md5_of
from reprovision.errors import DataError

CIFAR10_URLS = ("https://www.cs.toronto.edu/~kriz/",)
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR10_MEMBERS = {
    "cifar-10-batches-py/data_batch_1": "c99cafc152244af753f735de768cd75f",
    "cifar-10-batches-py/data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "cifar-10-batches-py/data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "cifar-10-batches-py/data_batch_4": "634d18415352ddfa80567beed471001a",
    "cifar-10-batches-py/data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "cifar-10-batches-py/test_batch": "40351d587109b95175f43aff81a1287e",
    "cifar-10-batches-py/batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
CIFAR10_FILE = RawFile("cifar-10-python.tar.gz", members=CIFAR10_MEMBERS, file_md5="c58f30108f718f92721af3b95e74349a")


def unpickle_verified(data: bytes, md5: str, name: str) -> Any:
    """Unpickle `data` only if it hashes to `md5`, and then only arrays and plain containers."""
    if md5_of(data) != md5:
        raise DataError(f"{name}: md5 does not match the published one; refusing to unpickle it")
    return unpickle_arrays(data, name, "CIFAR")


def read_cifar10(raw_dir: Path, cfg: Any, files: tuple[RawFile, ...] = (CIFAR10_FILE,)) -> RawData:
    """The batches in `files` (the registry's spec: its member md5s are what each pickle must hash to),
    within the archive limits of `cfg` (data)."""
    (spec,) = files
    archive = iter_members(raw_dir / spec.name, Limits.of(cfg.archive))
    members = {str(p): d for p, d in archive if str(p) in spec.members}
    missing = sorted(set(spec.members) - set(members))
    if missing:
        raise DataError(f"{spec.name}: {missing[0]} is missing; download it again")
    batches = {name: unpickle_verified(members[name], md5, name) for name, md5 in spec.members.items()}

    def arrays(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        x = np.concatenate([np.asarray(batches[n][b"data"], dtype=np.uint8) for n in names])
        y = np.concatenate([np.asarray(batches[n][b"labels"], dtype=np.int64) for n in names])
        return x.reshape(-1, 3, 32, 32), y  # rows are the red plane, then green, then blue

    classes = [c.decode() for c in batches["cifar-10-batches-py/batches.meta"][b"label_names"]]
    x_train, y_train = arrays([f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)])
    x_test, y_test = arrays(["cifar-10-batches-py/test_batch"])
    return RawData(x_train, y_train, x_test, y_test, classes)
