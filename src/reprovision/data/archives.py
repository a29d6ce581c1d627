"""Read archives without trusting them: no member may escape its root, be a link, or inflate past
the limits (data.archive), and no member is read whole before its size is known to be bounded."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from reprovision.errors import DataError

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
ZIP_SUFFIXES = (".zip", ".npz")  # numpy's .npz is a zip of .npy files
MIB = 1 << 20
CHUNK = MIB
# The ratio limit starts to count past this much inflated data: a few MiB exhaust nothing, and a
# small archive of blank images legitimately compresses far beyond any ratio worth refusing.
RATIO_GRACE = 8 * MIB


@dataclass(frozen=True)
class Limits:
    """What one archive may hold (data.archive): members, bytes per member, bytes in all, and
    inflated bytes per byte of the archive file."""

    members: int
    member_bytes: int
    total_bytes: int
    ratio: float

    @classmethod
    def of(cls, archive: Any) -> Limits:
        """From the config's data.archive section."""
        return cls(archive.max_members, archive.max_member_mib * MIB, archive.max_total_mib * MIB, archive.max_ratio)


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _check_name(archive: Path, name: str) -> PurePosixPath:
    p = PurePosixPath(name)
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"{archive.name}: member {name!r} has an absolute path; refusing the archive")
    if ".." in p.parts:
        raise DataError(f"{archive.name}: member {name!r} points outside the archive (..); refusing it")
    return p


class _Budget:
    """Counts an archive's members and bytes as they are read; refuses the first member past a limit."""

    def __init__(self, archive: Path, limits: Limits) -> None:
        self.archive, self.limits = archive, limits
        self.members = self.total = self.inflated = 0
        self.member = "(the first member)"  # the member being read, for messages
        self.ceiling = max(limits.ratio * archive.stat().st_size, RATIO_GRACE)

    def refuse(self, what: str, key: str, value: float) -> DataError:
        return DataError(
            f"{self.archive.name}: member {self.member!r} {what}, over data.archive.{key}={value:g}; "
            "refusing the archive (raise the limit only for an archive you trust)"
        )

    def admit(self, name: str, declared: int) -> None:
        """Before a member is read: its number and declared size."""
        lim = self.limits
        self.member, self.members = name, self.members + 1
        if self.members > lim.members:
            raise self.refuse(f"is member number {self.members:,}", "max_members", lim.members)
        if declared > lim.member_bytes:
            raise self.refuse(f"declares {declared:,} bytes", "max_member_mib", lim.member_bytes / MIB)
        if self.total + declared > lim.total_bytes:
            raise self.refuse(
                f"brings the total to {self.total + declared:,} bytes", "max_total_mib", lim.total_bytes / MIB
            )

    def grow(self, inflated: int, verb: str = "inflates") -> None:
        """`inflated` more bytes came out of the decompressor (or are declared to)."""
        self.inflated += inflated
        if self.inflated > self.ceiling:
            raise self.refuse(
                f"{verb} the archive to over {self.inflated:,} bytes from {self.archive.stat().st_size:,}",
                "max_ratio",
                self.limits.ratio,
            )

    def read(self, f: BinaryIO, declared: int, counts_inflation: bool) -> bytes:
        """The member's content, read a chunk at a time and never past its declared size."""
        chunks, size = [], 0
        while block := f.read(CHUNK):
            chunks.append(block)
            size += len(block)
            if counts_inflation:
                self.grow(len(block))
            if size > declared:
                raise DataError(
                    f"{self.archive.name}: member {self.member!r} inflates past its declared {declared:,} bytes; "
                    "refusing the archive"
                )
        self.total += size
        return b"".join(chunks)


class _Inflated:
    """A decompressed stream that counts what it inflates, so a bomb stops at the ratio limit,
    whatever part of the archive (member or header) it hides in."""

    def __init__(self, raw: BinaryIO, budget: _Budget) -> None:
        self.raw, self.budget = raw, budget

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n if n is not None and n >= 0 else CHUNK)
        self.budget.grow(len(data))
        return data


def _decompressed(f: BinaryIO) -> BinaryIO:
    head = f.read(6)
    f.seek(0)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=f)
    if head.startswith(b"BZh"):
        return bz2.BZ2File(f)
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(f)
    return f


def iter_members(archive: Path, limits: Limits) -> Iterator[tuple[PurePosixPath, bytes | None]]:
    """(path, content) for each member in stored order; content None for a directory.

    Refuses, with a DataError naming the member, absolute paths, `..`, links, device files, and
    anything past `limits`; a truncated or corrupt archive is a DataError too. Members are read
    in chunks, each only once its declared size is within the limits. Nothing is written to disk.
    """
    try:
        if archive.name.lower().endswith(ZIP_SUFFIXES):
            yield from _iter_zip(archive, _Budget(archive, limits))
        else:
            yield from _iter_tar(archive, _Budget(archive, limits))
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error, lzma.LZMAError) as e:
        raise DataError(
            f"{archive.name}: unreadable archive ({e or type(e).__name__}): the file is "
            "truncated or not an archive; download it again"
        ) from None


def _iter_tar(archive: Path, budget: _Budget) -> Iterator[tuple[PurePosixPath, bytes | None]]:
    # Stream mode ("r|"): one sequential pass, no random seeks through a compressed file.
    with archive.open("rb") as raw, tarfile.open(fileobj=_Inflated(_decompressed(raw), budget), mode="r|") as tar:
        for member in tar:
            path = _check_name(archive, member.name)
            if member.issym() or member.islnk():
                raise DataError(f"{archive.name}: member {member.name!r} is a link; refusing the archive")
            budget.admit(member.name, member.size if member.isfile() else 0)
            if member.isdir():
                yield path, None
            elif member.isfile():
                f = tar.extractfile(member)
                yield path, budget.read(f, member.size, counts_inflation=False) if f else b""
            else:
                raise DataError(f"{archive.name}: member {member.name!r} is not a regular file; refusing it")


def _iter_zip(archive: Path, budget: _Budget) -> Iterator[tuple[PurePosixPath, bytes | None]]:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        # The central directory declares every member: a bomb is refused before anything inflates.
        declared = _Budget(archive, budget.limits)
        for info in infos:
            declared.admit(info.filename, info.file_size)
            declared.total += info.file_size
            declared.grow(info.file_size, "would inflate")
        for info in infos:
            path = _check_name(archive, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise DataError(f"{archive.name}: member {info.filename!r} is a link; refusing the archive")
            budget.admit(info.filename, info.file_size)
            if info.is_dir():
                yield path, None
                continue
            with zf.open(info) as f:
                yield path, budget.read(f, info.file_size, counts_inflation=True)


def pack_directory(src: Path, dest: Path, limits: Limits) -> None:
    """Pack a directory into an uncompressed tar, reproducibly (sorted names, fixed metadata).

    Each file becomes a regular member: two hard-linked names of one image are two copies, not
    a link the reader would refuse. Symlinks and special files are refused naming the path, and
    the limits apply before anything is copied.
    """
    count, total = 0, 0
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(src.rglob("*")):
            rel = path.relative_to(src).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                raise DataError(f"{src}: {rel} is a symlink; copy the file in instead")
            if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                raise DataError(f"{src}: {rel} is not a regular file or directory; remove it")
            size = st.st_size if stat.S_ISREG(st.st_mode) else 0
            count, total = count + 1, total + size
            _check_folder(src, rel, count, size, total, limits)
            info = tarfile.TarInfo(rel)
            info.mode, info.mtime = (0o755 if stat.S_ISDIR(st.st_mode) else 0o644), 0
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                continue
            info.size = st.st_size
            with path.open("rb") as f:
                if os.fstat(f.fileno()).st_size != info.size:
                    raise DataError(f"{src}: {rel} changed while it was read; try again")
                tar.addfile(info, f)


def _check_folder(src: Path, rel: str, count: int, size: int, total: int, limits: Limits) -> None:
    """The archive limits, applied to a folder before it is packed (a huge file is never copied)."""
    for over, what, key, value in (
        (count > limits.members, f"is entry number {count:,}", "max_members", limits.members),
        (size > limits.member_bytes, f"is {size:,} bytes", "max_member_mib", limits.member_bytes / MIB),
        (total > limits.total_bytes, f"brings the total to {total:,} bytes", "max_total_mib", limits.total_bytes / MIB),
    ):
        if over:
            raise DataError(f"{src}: {rel} {what}, over data.archive.{key}={value:g}; raise the limit or remove files")
