"""The user's train/<class>/* and test/<class>/* folders (imagefolder, textfolder): kept in data/raw
as one archive, read back member by member within data.archive's limits."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TypeVar

from tqdm import tqdm

from reprovision.data.archives import Limits, is_archive, iter_members, pack_directory
from reprovision.data.fetch import copy_file
from reprovision.errors import DataError

SPLIT_DIRS = ("train", "test")
T = TypeVar("T")
# split -> class -> decoded files, in archive order
Found = dict[str, dict[str, list[T]]]


def fetch_folder(path: str, dest: Path, limits: Limits, packed: str) -> str:
    """Keep the user's folder as one file in data/raw: an archive as given, a directory packed
    into `packed` (a .tar). Returns where it came from."""
    src = Path(path)
    if src.is_dir():
        pack_directory(src, dest / packed, limits)
    elif src.is_file() and is_archive(src):
        copy_file(src, dest / src.name)
    else:
        raise DataError(f"data.path={path!r}: not a directory or a .tar/.tar.gz/.zip archive")
    for _ in iter_members(archive_in(dest), limits):  # refuse unsafe or truncated archives now, not at split
        pass
    return str(src.resolve())


def archive_in(raw_dir: Path) -> Path:
    return next(p for p in sorted(raw_dir.iterdir()) if is_archive(p))


def collect(
    archive: Path, limits: Limits, suffixes: set[str], decode: Callable[[bytes, str], T], desc: str
) -> Found[T]:
    """Every file with one of `suffixes` under train/<class>/ and test/<class>/, decoded by
    `decode(data, where)`; each class folder seen, even an empty one."""
    found: Found[T] = {s: {} for s in SPLIT_DIRS}
    bar = tqdm(desc=desc, unit=" file", disable=None if sys.stderr.isatty() else True, leave=False)
    with bar:
        for path, data in iter_members(archive, limits):
            parts = _strip_root(path)
            if parts is None or len(parts) < 2:
                continue
            split, cls = parts[0], parts[1]
            found[split].setdefault(cls, [])
            if data is None or len(parts) != 3 or PurePosixPath(parts[2]).suffix.lower() not in suffixes:
                continue
            found[split][cls].append(decode(data, "/".join(parts)))
            bar.update()
    return found


def check_classes(found: Found, dataset: str, files: str) -> tuple[list[str], bool]:
    """The classes (sorted train/ folders) and whether there is a test/ split; refuse a bad layout.
    `files` says what a class folder holds, in messages ("images")."""
    classes = sorted(found["train"])
    if not classes:
        raise DataError(f"{dataset}: no train/<class>/ folders found; the layout is train/<class>/<file>")
    for split in SPLIT_DIRS:
        for cls, items in found[split].items():
            if not items:
                raise DataError(f"{dataset}: class {cls!r} in {split}/ has no {files}; add {files} or remove it")
    has_test = bool(found["test"])
    if has_test and set(found["test"]) != set(classes):
        diff = sorted(set(found["test"]) ^ set(classes))[0]
        where = "train/" if diff not in found["train"] else "test/"
        raise DataError(f"{dataset}: class {diff!r} is missing from {where}; train/ and test/ need the same classes")
    return classes, has_test


def _strip_root(path: PurePosixPath) -> tuple[str, ...] | None:
    """Parts from train/ or test/ on, allowing one enclosing folder (images/train/...)."""
    parts = path.parts
    for start in (0, 1):
        if len(parts) > start and parts[start] in SPLIT_DIRS:
            return parts[start:]
    return None
