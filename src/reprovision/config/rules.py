"""The range checks the schemas run in __post_init__: a failure is a one-line ConfigError."""

from __future__ import annotations

import re
from typing import Any

from reprovision.errors import ConfigError
from reprovision.urls import has_password, is_http


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


def no_password(key: str, url: str | None, instead: str) -> None:
    """A URL in the config is written to params.yaml, to dvc.lock and to each experiment's git
    commit, which `dvc exp push` shares: a password in it would be kept there in clear."""
    if url is not None and has_password(url):
        raise ConfigError(
            f"{key} holds a password, which params.yaml, dvc.lock and git would keep in clear: "
            f"give the URL without it and {instead}"
        )


# Where each kind of URL takes its password from instead, outside git.
NETRC = "put `machine HOST login USER password PASSWORD` in ~/.netrc (or the file $NETRC names)"
MLFLOW_LOGIN = "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in the environment"
DATABASE_LOGIN = "set PGPASSWORD or a ~/.pgpass line (PostgreSQL reads them), or the database's own option file"


def login_for(url: str) -> str:
    """Where a tracking URI's password goes: MLflow's variables for a server, the database's for a database."""
    return MLFLOW_LOGIN if is_http(url) else DATABASE_LOGIN
