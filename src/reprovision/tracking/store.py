"""Where MLflow keeps runs: the tracking URI, a SQLite store's artifacts and lock, whether a
server answers, and MLflow's module-level API pointed at one store for a block."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from reprovision.config import Config
from reprovision.errors import BadInput
from reprovision.urls import basic_auth, is_http, masked, split_credentials, without_credentials

DEFAULT_URI = "sqlite:///mlflow.db"  # the embedded default: a SQLite store in the project root
DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}  # what MLflow's SQLAlchemy stores speak


def tracking_uri(cfg: Config) -> str:
    """$MLFLOW_TRACKING_URI, else `tracking.uri`, else the project's SQLite store.

    Under DVC the store is the project root's even when a queued experiment runs in a copy of
    the workspace (DVC sets $DVC_ROOT to the original root), so every run lands in one place.
    """
    if os.environ.get("MLFLOW_TRACKING_URI") or cfg.tracking.uri:
        return os.environ.get("MLFLOW_TRACKING_URI") or cfg.tracking.uri
    root = os.environ.get("DVC_ROOT")
    return f"sqlite:///{Path(root).resolve() / 'mlflow.db'}" if root else DEFAULT_URI


def artifact_location(uri: str) -> str | None:
    """Artifacts of a SQLite store live beside the database file; a server chooses its own."""
    if uri.startswith("sqlite:///"):
        return str(Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlruns")
    return None


def with_credentials(recorded: str, configured: str | None = None) -> str:
    """The recorded tracking URI (written without credentials) with the user's put back: those of
    `configured` or of $MLFLOW_TRACKING_URI, whichever names the same server; else as recorded,
    and MLflow reads MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD itself. Credentials for
    one server are never sent to another."""
    for uri in (configured, os.environ.get("MLFLOW_TRACKING_URI")):
        if uri and without_credentials(uri) == recorded:
            return uri
    return recorded


def client_uri(uri: str) -> str:
    """`uri` as MLflow's client is given it: its user:password moved to MLflow's own
    MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (this process's), because MLflow prints
    the URI it holds in every run link ("View run ... at")."""
    bare, user, password = split_credentials(uri)
    if user is not None:
        os.environ["MLFLOW_TRACKING_USERNAME"] = user
    if password is not None:  # a user alone in the URI keeps the password of the environment
        os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    return bare


def _authorization(uri: str) -> str | None:
    """The header MLflow's client would send: user:password from the URI, else its environment."""
    _, user, password = split_credentials(uri)
    if user is None and os.environ.get("MLFLOW_TRACKING_USERNAME"):
        user, password = os.environ["MLFLOW_TRACKING_USERNAME"], os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user is not None:
        return basic_auth(user, password)
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    return f"Bearer {token}" if token else None


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, before any training, when a tracking server does not answer or refuses the
    credentials, or a tracking database takes no connection (the MLflow client would otherwise
    retry for minutes)."""
    if not is_http(uri):
        _check_database(uri, timeout_s)
        return
    import urllib.error
    import urllib.request

    # user:password goes in a header: in the URL the resolver would take it for the host name.
    request = urllib.request.Request(without_credentials(uri).rstrip("/") + "/health")
    if auth := _authorization(uri):
        request.add_unredirected_header("Authorization", auth)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            pass
    except urllib.error.HTTPError as e:
        if e.code not in (401, 403):
            raise _unreachable(uri, f"HTTP {e.code} {e.reason}") from None
        raise BadInput(
            f"MLflow tracking server {masked(uri)} refused the credentials (HTTP {e.code}); set the user and "
            "password in the URI or in MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD"
        ) from None
    except OSError as e:
        raise _unreachable(uri, getattr(e, "reason", e)) from None


def _check_database(uri: str, timeout_s: float) -> None:
    """A database URI's host takes a TCP connection (SQLite, a file store and a Unix socket have none)."""
    parts = urlsplit(uri)
    default_port = DATABASE_PORTS.get(parts.scheme.split("+")[0])
    if default_port is None or not parts.hostname:
        return
    try:
        socket.create_connection((parts.hostname, parts.port or default_port), timeout=timeout_s).close()
    except (OSError, ValueError) as e:  # ValueError: a port that is not a number
        raise BadInput(
            f"MLflow tracking database {masked(uri)} unreachable ({e}); start it, or unset "
            "MLFLOW_TRACKING_URI / tracking.uri to track in the local sqlite:///mlflow.db"
        ) from None


def _unreachable(uri: str, reason: object) -> BadInput:
    return BadInput(
        f"MLflow tracking server {masked(uri)} unreachable ({reason}); start it, or unset "
        "MLFLOW_TRACKING_URI / tracking.uri to track in the local sqlite:///mlflow.db"
    )


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Serialise work on a SQLite store that must not interleave: creating the store and its
    experiment (two pipelines starting at once would both run MLflow's schema migrations, and one
    would fail), and registering a model and moving `champion`. A server serialises its own."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    from filelock import FileLock

    with FileLock(f"{Path(uri.removeprefix('sqlite:///')).resolve()}.lock", timeout=300):
        yield


@contextlib.contextmanager
def fluent_api(uri: str) -> Iterator[None]:
    """MLflow's module-level API (log_model, register_model, download_artifacts) on `uri`, for
    this block only.

    `mlflow.set_tracking_uri` also exports MLFLOW_TRACKING_URI, which would outrank `tracking.uri`
    for every later run of this process and its children; it is put back on the way out, and so
    are MLflow's log level and its download progress bars (off inside: not for stage logs). Its
    INFO chatter about models-from-code and input examples (by design here) is dropped; warnings
    still show.
    """
    import logging
    import warnings

    import mlflow

    logger = logging.getLogger("mlflow")
    level, before = logger.level, os.environ.get("MLFLOW_TRACKING_URI")
    bars = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    logger.setLevel(logging.WARNING)
    mlflow.set_tracking_uri(client_uri(uri))
    try:
        with warnings.catch_warnings():
            # MLflow's signature code uses a pandas idiom pandas deprecates; nothing for us to act on.
            warnings.filterwarnings("ignore", message="Operation with range is deprecated")
            yield
    finally:
        mlflow.set_tracking_uri(before)  # None: unset again
        logger.setLevel(level)
        if bars is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = bars
