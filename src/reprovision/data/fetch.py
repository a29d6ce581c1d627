"""Bring one file from the first source that has it: an http(s) URL or a local directory."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from reprovision.errors import DataError
from reprovision.urls import masked

log = logging.getLogger("reprovision.download")
T = TypeVar("T")
CHUNK = 1 << 20
TIMEOUT_S = 30


def _progress(total: int | None, name: str) -> tqdm:
    # A bar with bytes, rate and time left on a terminal; nothing in CI logs or pipes.
    return tqdm(
        total=total,
        desc=name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=None if sys.stderr.isatty() else True,
        leave=False,
    )


def _copy_stream(read: Callable[[int], bytes], out: Path, total: int | None, name: str) -> None:
    with out.open("wb") as f, _progress(total, name) as bar:
        while block := read(CHUNK):
            f.write(block)
            bar.update(len(block))


def _fetch_one(base: str, name: str, out: Path) -> None:
    if base.startswith(("http://", "https://")):
        url = base.rstrip("/") + "/" + name if not base.endswith(name) else base
        req = urllib.request.Request(url, headers={"User-Agent": "reprovision"})
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            length = resp.headers.get("Content-Length")
            _copy_stream(resp.read, out, int(length) if length else None, name)
            if length and out.stat().st_size != int(length):
                raise DataError(f"connection closed after {out.stat().st_size} of {length} bytes")
    else:
        src = Path(base)
        src = src if src.is_file() and src.name == name else src / name
        if not src.is_file():
            raise FileNotFoundError(f"no file {src}")
        with src.open("rb") as f:
            _copy_stream(f.read, out, src.stat().st_size, name)


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return f"unreachable ({e.reason})"
    if isinstance(e, TimeoutError):
        return f"no answer in {TIMEOUT_S} s"
    return str(e) or type(e).__name__


def fetch_first(name: str, sources: Sequence[str], out: Path, verify: Callable[[Path], T]) -> tuple[str, T]:
    """Write `name` to `out` from the first source whose copy passes `verify`.

    Returns that source and what `verify` returned.

    Each failure is logged on one line and the next source is tried. When none works, a
    DataError lists every reason. `out` only exists afterwards if a verified copy was found.
    """
    reasons = []
    for base in sources:
        partial = out.with_name(f".partial.{out.name}")  # keeps the suffix: .gz, .tar.gz, .zip
        try:
            _fetch_one(base, name, partial)
            checked = verify(partial)
            os.replace(partial, out)
            return base, checked
        except (OSError, DataError, ValueError) as e:  # URLError and HTTPError are OSErrors
            reason = f"{masked(base)}: {_reason(e)}"
            log.warning("download: %s from %s; trying the next source", name, reason)
            reasons.append(reason)
        finally:
            partial.unlink(missing_ok=True)
    raise DataError(
        f"{name}: no source worked ({'; '.join(reasons)}); set data.mirror to a URL or directory that holds {name}"
    )


def copy_file(src: Path, dest: Path) -> None:
    """Copy with a progress bar on a terminal."""
    with src.open("rb") as f:
        _copy_stream(f.read, dest, src.stat().st_size, src.name)
    shutil.copystat(src, dest)
