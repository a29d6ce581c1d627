"""URLs as users write them: credentials hidden before a URL reaches a log or a record."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def masked(location: str) -> str:
    """A URL with any user:password part hidden, for logs."""
    parts = urlsplit(location)
    if parts.password is None and parts.username is None:
        return location
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=f"***@{host}"))
