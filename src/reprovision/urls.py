"""URLs as users write them: credentials hidden before a URL reaches a log or a record, and taken
out of the URL before it reaches a resolver."""

from __future__ import annotations

import base64
import netrc
import os
from urllib.parse import unquote, urlsplit, urlunsplit


def _host(netloc: str) -> str:
    return netloc.rpartition("@")[2]  # host[:port] as written (an IPv6 address keeps its brackets)


PASSWORD_KEYS = ("password", "passwd")  # a database URL's query may carry the password instead


def is_http(location: str) -> bool:
    return urlsplit(location).scheme.lower() in ("http", "https")


def _database(location: str):
    """A database URL (postgresql://, mysql+pymysql://, ...) as SQLAlchemy reads it, as MLflow's
    and Optuna's stores do: its password may hold `/`, `?` or `#`, which a URL parser stops at.
    None for other locations."""
    if is_http(location) or "://" not in location:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(location)
    except (ArgumentError, ValueError):
        return None


def has_password(location: str) -> bool:
    """Whether a URL carries a password: user:password@ or, for a database, ?password=."""
    database = _database(location)
    if database is not None:
        return database.password is not None or any(k in database.query for k in PASSWORD_KEYS)
    return urlsplit(location).password is not None


def masked(location: str) -> str:
    """A URL with any user:password part hidden, for logs."""
    database = _database(location)
    if database is not None:
        query = {k: ("***" if k in PASSWORD_KEYS else v) for k, v in database.query.items()}
        hidden = database.set(username="***" if database.username else None, query=query)
        return hidden.render_as_string(hide_password=True).replace("%2A", "*")
    parts = urlsplit(location)
    if parts.password is None and parts.username is None:
        return location
    return urlunsplit(parts._replace(netloc=f"***@{_host(parts.netloc)}"))


def split_credentials(location: str) -> tuple[str, str | None, str | None]:
    """The URL without its user:password part, then the user and the password (percent-decoded;
    None where absent). `http://alice:s%40fe@host/` -> (`http://host/`, `alice`, `s@fe`)."""
    parts = urlsplit(location)
    if parts.password is None and parts.username is None:
        return location, None, None
    bare = urlunsplit(parts._replace(netloc=_host(parts.netloc)))
    password = None if parts.password is None else unquote(parts.password)
    return bare, unquote(parts.username or ""), password


def without_credentials(location: str) -> str:
    return split_credentials(location)[0]


def basic_auth(user: str, password: str | None) -> str:
    """An HTTP Basic Authorization header value."""
    return "Basic " + base64.b64encode(f"{user}:{password or ''}".encode()).decode()


def netrc_login(url: str) -> tuple[str | None, str | None]:
    """The login and password that ~/.netrc (or the file $NETRC names) holds for the URL's host,
    as curl, wget and pip read them; (None, None) where it names none. A malformed file, or one
    that others may read, raises netrc.NetrcParseError."""
    try:
        entry = netrc.netrc(os.environ.get("NETRC") or None).authenticators(urlsplit(url).hostname or "")
    except FileNotFoundError:
        return None, None
    return (entry[0], entry[2]) if entry else (None, None)
