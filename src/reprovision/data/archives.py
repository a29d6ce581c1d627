"""Read archives without trusting them: no member may escape its root or be a link."""

from __future__ import annotations

import stat
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from reprovision.errors import DataError

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _check_name(archive: Path, name: str) -> PurePosixPath:
    p = PurePosixPath(name)
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"{archive.name}: member {name!r} has an absolute path; refusing the archive")
    if ".." in p.parts:
        raise DataError(f"{archive.name}: member {name!r} points outside the archive (..); refusing it")
    return p


def iter_members(archive: Path) -> Iterator[tuple[PurePosixPath, bytes | None]]:
    """(path, content) for each member in stored order; content None for a directory.

    Refuses, with a DataError naming the member, absolute paths, `..`, links and device files;
    a truncated or corrupt archive is a DataError too. Nothing is written to disk.
    """
    try:
        if archive.name.lower().endswith(".zip"):
            yield from _iter_zip(archive)
        else:
            yield from _iter_tar(archive)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise DataError(
            f"{archive.name}: unreadable archive ({e or type(e).__name__}): the file is "
            "truncated or not an archive; download it again"
        ) from None


def _iter_tar(archive: Path) -> Iterator[tuple[PurePosixPath, bytes | None]]:
    # Stream mode ("r|*"): one sequential pass, no random seeks through a compressed file.
    with tarfile.open(archive, "r|*") as tar:
        for member in tar:
            path = _check_name(archive, member.name)
            if member.issym() or member.islnk():
                raise DataError(f"{archive.name}: member {member.name!r} is a link; refusing the archive")
            if member.isdir():
                yield path, None
            elif member.isfile():
                f = tar.extractfile(member)
                yield path, f.read() if f else b""
            else:
                raise DataError(f"{archive.name}: member {member.name!r} is not a regular file; refusing it")


def _iter_zip(archive: Path) -> Iterator[tuple[PurePosixPath, bytes | None]]:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            path = _check_name(archive, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise DataError(f"{archive.name}: member {info.filename!r} is a link; refusing the archive")
            yield (path, None) if info.is_dir() else (path, zf.read(info))


def pack_directory(src: Path, dest: Path) -> None:
    """Pack a directory into an uncompressed tar, reproducibly (sorted names, fixed metadata)."""

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(src.rglob("*")):
            if path.is_symlink():
                raise DataError(f"{src}: {path.relative_to(src)} is a symlink; copy the file in instead")
            tar.add(path, arcname=path.relative_to(src).as_posix(), recursive=False, filter=clean)
