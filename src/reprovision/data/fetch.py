"""Bring one file from the first source that has it: an http(s) URL or a local directory."""

from __future__ import annotations

import logging
import netrc
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from reprovision.errors import DataError
from reprovision.urls import basic_auth, is_http, masked, netrc_login, split_credentials

log = logging.getLogger("reprovision.download")
T = TypeVar("T")
CHUNK = 1 << 20
MIB = 1 << 20


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


class _Pace:
    """Gives a source up when it sends under `min_kib_per_s` over any `timeout_s` window, and never
    reads past the expected size: each read has a timeout, but a trickle answers every one."""

    def __init__(self, download: Any, expected: int | None) -> None:
        self.download, self.window_s = download, download.timeout_s
        self.most = min(expected, download.max_mib * MIB) if expected is not None else download.max_mib * MIB
        self.got = self.in_window = 0
        self.since = time.monotonic()

    def room(self) -> int:
        """How much more to ask for: a chunk, or less near the expected size (then one byte past
        it, to notice a source that sends more than it said)."""
        return max(min(CHUNK, self.most - self.got), 1)

    def update(self, n: int) -> None:
        self.got, self.in_window = self.got + n, self.in_window + n
        if self.got > self.most:
            raise DataError(f"sent more than the {self.most:,} bytes expected (data.download.max_mib)")
        elapsed = time.monotonic() - self.since
        if elapsed >= self.window_s:
            if self.in_window < self.download.min_kib_per_s * 1024 * elapsed:
                raise DataError(
                    f"stalled: {self.in_window:,} bytes in the last {elapsed:.0f} s, under "
                    f"data.download.min_kib_per_s={self.download.min_kib_per_s:g}"
                )
            self.since, self.in_window = time.monotonic(), 0


def _copy_stream(read: Callable[[int], bytes], out: Path, total: int | None, name: str, pace: _Pace | None) -> None:
    with out.open("wb") as f, _progress(total, name) as bar:
        while block := read(pace.room() if pace else CHUNK):
            f.write(block)
            bar.update(len(block))
            if pace:
                pace.update(len(block))


def _fetch_one(base: str, name: str, out: Path, download: Any) -> None:
    if is_http(base):
        # The user:password of a URL goes in a header: the resolver would take it for the host.
        bare, user, password = split_credentials(base)
        if password is None:  # the config holds none (it is refused there): ~/.netrc's for the host
            login, secret = _netrc_login(bare)
            if user in (None, login):
                user, password = login, secret
        url = bare.rstrip("/") + "/" + name if not bare.endswith(name) else bare
        req = urllib.request.Request(url, headers={"User-Agent": "reprovision"})
        if user is not None:
            req.add_unredirected_header("Authorization", basic_auth(user, password))  # not sent on to a redirect
        with urllib.request.urlopen(req, timeout=download.timeout_s) as resp:
            length = resp.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            # read1: what has arrived, so a trickle is measured instead of waited for in full.
            _copy_stream(resp.read1, out, expected, name, _Pace(download, expected))
            if expected is not None and out.stat().st_size != expected:
                raise DataError(f"connection closed after {out.stat().st_size} of {length} bytes")
    else:
        src = Path(base)
        src = src if src.is_file() and src.name == name else src / name
        if not src.is_file():
            raise FileNotFoundError(f"no file {src}")
        if src.stat().st_size > download.max_mib * MIB:
            raise DataError(f"{src.stat().st_size:,} bytes, over data.download.max_mib={download.max_mib}")
        with src.open("rb") as f:
            _copy_stream(f.read, out, src.stat().st_size, name, None)


def _netrc_login(url: str) -> tuple[str | None, str | None]:
    try:
        return netrc_login(url)
    except netrc.NetrcParseError as e:  # malformed, or readable by others
        raise DataError(f"{e.filename}: {e.msg} (line {e.lineno}); fix it or remove it") from None


def _reason(e: BaseException, timeout_s: float) -> str:
    if isinstance(e, urllib.error.HTTPError):
        hint = "; check the login for this host in ~/.netrc (or the file $NETRC names)" if e.code in (401, 403) else ""
        return f"HTTP {e.code} {e.reason}{hint}"
    if isinstance(e, urllib.error.URLError):
        return f"unreachable ({e.reason})"
    if isinstance(e, TimeoutError):
        return f"no answer in {timeout_s:g} s (data.download.timeout_s)"
    return str(e) or type(e).__name__


def fetch_first(
    name: str, sources: Sequence[str], out: Path, verify: Callable[[Path], T], download: Any
) -> tuple[str, T]:
    """Write `name` to `out` from the first source whose copy passes `verify`.

    Returns that source and what `verify` returned. `download` (data.download) says when a
    source that answers too slowly is given up.

    Each failure is logged on one line and the next source is tried. When none works, a
    DataError lists every reason. `out` only exists afterwards if a verified copy was found.
    """
    reasons = []
    for base in sources:
        partial = out.with_name(f".partial.{out.name}")  # keeps the suffix: .gz, .tar.gz, .zip
        try:
            _fetch_one(base, name, partial, download)
            checked = verify(partial)
            os.replace(partial, out)
            return base, checked
        except (OSError, DataError, ValueError) as e:  # URLError and HTTPError are OSErrors
            reason = f"{masked(base)}: {_reason(e, download.timeout_s)}"
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
        _copy_stream(f.read, dest, src.stat().st_size, src.name, None)
    shutil.copystat(src, dest)
