"""The range checks the schemas run in __post_init__: a failure is a one-line ConfigError."""

from __future__ import annotations

import re
from typing import Any

from reprovision.errors import ConfigError


def require(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is out of range: expected {expected}")


def positive_ints(key: str, values: list[int]) -> None:
    require(len(values) >= 1 and min(values) >= 1, key, values, "a non-empty list of positive integers")


def fraction(key: str, value: float) -> None:
    require(0 <= value < 1, key, value, "0 <= x < 1")


NAME = re.compile(r"[A-Za-z0-9_-]+")


def name(key: str, value: str | None) -> None:
    """A name that becomes part of a path, a URI or a query: letters, digits, `_` and `-` only, so
    it can neither climb out of its directory (`../`) nor end a quoted string or a URI part."""
    if value is not None and not NAME.fullmatch(value):
        raise ConfigError(f"{key}={value!r} is not a name: use letters, digits, _ and - only")
