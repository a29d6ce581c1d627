"""Checking downloaded raw files: content checksums, HTML error pages, the download manifest."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import Any

from reprovision.data.archives import Limits, iter_members
from reprovision.data.raw import RawFile
from reprovision.errors import DataError
from reprovision.files import file_digest, sha256_file


def md5_of(data: bytes) -> str:
    """md5 of bytes in memory, hex."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _looks_like_html(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body"))


def content_md5(path: Path) -> str:
    """md5 of a file's content: decompressed if it is gzip."""
    h = hashlib.md5(usedforsecurity=False)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    except EOFError:
        raise DataError("truncated: the compressed data ends early") from None
    except gzip.BadGzipFile:
        raise DataError("not a gzip file") from None
    return h.hexdigest()


def verify_file(path: Path, spec: RawFile, limits: Limits | None = None) -> dict[str, Any]:
    """Check a downloaded file against `spec`; return its manifest entry or raise DataError.

    An archive (`spec.members`) is read within `limits` (data.archive), which it then needs."""
    if _looks_like_html(path):
        raise DataError("the source sent an HTML page instead of the file")
    if spec.members:
        members = iter_members(path, limits)
        got = {str(p): md5_of(data) for p, data in members if str(p) in spec.members and data is not None}
        bad = [m for m, md5 in spec.members.items() if got.get(m) != md5]
        ok = not bad
        detail = f"member {bad[0]} missing or changed" if bad else ""
    elif spec.content_md5:
        actual = content_md5(path)
        ok = actual == spec.content_md5
        detail = f"content md5 {actual} is not the published {spec.content_md5}"
    elif spec.file_sha256:
        actual = sha256_file(path)
        ok = actual == spec.file_sha256
        detail = f"sha256 {actual} is not the published {spec.file_sha256}: serve the original {spec.name}"
    else:
        ok, detail = False, "only the compressed file's md5 is published, so a re-compressed copy cannot be checked"
    if not ok and spec.file_md5:
        actual = file_digest(path, "md5")
        ok = actual == spec.file_md5
        detail += f"; the file's md5 {actual} is not the published {spec.file_md5}"
        detail += "" if spec.content_md5 or spec.members else ": serve the original file, not a re-compressed one"
    if not ok:
        raise DataError(f"checksum mismatch: {detail}")
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def check_manifest(raw_dir: Path, manifest: dict) -> None:
    """Refuse raw files that changed since the download stage verified them."""
    for name, entry in manifest["files"].items():
        path = raw_dir / name
        if not path.is_file() or sha256_file(path) != entry["sha256"]:
            raise DataError(
                f"{path}: differs from its download manifest; rerun the download stage (dvc repro -f download)"
            )
