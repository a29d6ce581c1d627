"""tracking-server: a team-style MLflow server on a throwaway PostgreSQL, to try team tracking locally.

It is what a team runs, made small: a PostgreSQL cluster in `--dir` (Debian's `postgresql`
package), `mlflow server` with it as the backend store and a served artifact store beside it, on
127.0.0.1. Point the pipeline at it with `export MLFLOW_TRACKING_URI=http://127.0.0.1:PORT`.
The database is reachable only through a socket in `--dir`; the MLflow server, like any plain
`mlflow server`, has no login: every account on this machine can use it.
Ctrl-C (or SIGTERM) stops both; the data stays in `--dir` for the next start. A real team server
differs only in where the database and the artifacts live.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from reprovision.errors import BadInput, StageFailed

DATABASE = "mlflow"
SOCKET_DIR_MAX = 107 - len("/.s.PGSQL.65535")  # sun_path holds 107 bytes and a NUL


def postgres_bin() -> Path:
    """Where Debian's `postgresql` package keeps initdb and pg_ctl (not on PATH)."""
    if found := shutil.which("pg_ctl"):
        return Path(found).resolve().parent  # the package directory, where createdb lives too
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise BadInput("PostgreSQL is not installed: apt-get install postgresql (or put pg_ctl on PATH)")
    return versions[-1].parent


def _as_owner(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; Debian's package creates the `postgres` user for it.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(_as_owner(cmd), capture_output=True, text=True)
    if proc.returncode:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise StageFailed(f"{what} failed: {detail[-1] if detail else proc.returncode}")


def _check_directory(directory: Path) -> None:
    """What PostgreSQL and libpq can take as a socket directory: libpq reads a comma as a list of
    hosts, and the socket's path must fit the kernel's 107 bytes."""
    text = str(directory)
    if "," in text or any(ord(c) < 32 for c in text):
        raise BadInput(f"--dir {text!r}: a comma or control character cannot be in a socket directory; choose another")
    if len(text.encode()) > SOCKET_DIR_MAX:
        raise BadInput(
            f"--dir {text}: longer than {SOCKET_DIR_MAX} bytes, too long for a socket path; choose a shorter"
        )


def _wait_ready(bin_dir: Path, server: subprocess.Popen, directory: Path, port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    ready = [str(bin_dir / "pg_isready"), "-q", "-h", str(directory), "-p", str(port), "-U", "mlflow"]
    while subprocess.run(ready).returncode:
        if server.poll() is not None or time.monotonic() > deadline:
            lines = log.read_text(errors="replace").strip().splitlines() if log.is_file() else []
            server.kill()
            raise StageFailed(f"PostgreSQL did not start ({log}): {lines[-1] if lines else server.returncode}")
        time.sleep(0.2)


@contextlib.contextmanager
def postgres(directory: Path, port: int) -> Iterator[str]:
    """A PostgreSQL cluster in `directory` while the block runs; its SQLAlchemy URI.

    It listens on no TCP port, only on a Unix socket inside `directory`, which only its owner (and
    root) may enter: no other account on the machine can reach the database, whose `mlflow` role
    is a superuser (trust authentication behind a private socket, for a try-out).

    `postgres` is started directly, each setting its own argument: no shell ever parses the
    directory (pg_ctl runs the server through /bin/sh, which would run `$(...)` in the name).
    """
    _check_directory(directory)
    bin_dir, data = postgres_bin(), directory / "postgres"
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres")
        if subprocess.run(_as_owner(["test", "-w", str(directory)])).returncode:
            raise BadInput(
                f"--dir {directory}: the postgres user cannot reach it (a parent directory is private); "
                "choose a directory under one that others may enter, such as /srv or /tmp"
            )
    fresh = not (data / "PG_VERSION").is_file()
    if fresh:
        _run([str(bin_dir / "initdb"), "-D", str(data), "-U", "mlflow", "--auth=trust", "-E", "UTF8"], "initdb")
    log = directory / "postgres.log"
    # A quoted entry of unix_socket_directories may hold spaces (its own syntax, not a shell's).
    sockets = '"' + str(directory).replace('"', '""') + '"'
    server_cmd = [str(bin_dir / "postgres"), "-D", str(data), "-c", "listen_addresses=", "-p", str(port), "-k", sockets]
    with log.open("ab") as out:  # its own session: a Ctrl-C at the terminal reaches this command, not the database
        server = subprocess.Popen(
            _as_owner(server_cmd), stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    try:
        _wait_ready(bin_dir, server, directory, port, log)
        if fresh:
            _run(
                [str(bin_dir / "createdb"), "-h", str(directory), "-p", str(port), "-U", "mlflow", DATABASE], "createdb"
            )
        yield f"postgresql+psycopg://mlflow@/{DATABASE}?host={quote(str(directory))}&port={port}"
    finally:
        _stop(server, data)


def _stop(server: subprocess.Popen, data: Path) -> None:
    """Fast shutdown (SIGINT to the postmaster, as `pg_ctl stop -m fast` sends)."""
    pid_file = data / "postmaster.pid"
    if server.poll() is None and pid_file.is_file():
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        raise StageFailed(f"PostgreSQL did not stop within 60 s; see {data.parent / 'postgres.log'}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=Path(".tracking-server"), help="database and artifacts")
    parser.add_argument("--port", type=int, default=5000, help="the MLflow server's port on 127.0.0.1")
    parser.add_argument("--db-port", type=int, default=5433, help="PostgreSQL's socket number (no TCP port is opened)")


def run(args: argparse.Namespace) -> None:
    directory = args.dir.resolve()
    # SIGTERM ends like Ctrl-C (cli.py), so the database is always stopped cleanly.
    with postgres(directory, args.db_port) as uri:
        server = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(args.port)]
        server += ["--backend-store-uri", uri, "--artifacts-destination", str(directory / "artifacts")]
        print(f"tracking-server: PostgreSQL {uri}; export MLFLOW_TRACKING_URI=http://127.0.0.1:{args.port}", flush=True)
        # MLflow's job execution (GenAI scorers, prompt optimisation) starts a pool of worker
        # processes beside the server; pipeline runs use none of it, so it stays off unless the
        # environment turns it on.
        env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
        proc = subprocess.Popen([*server, "--workers", "1"], env=env)
        try:
            if proc.wait():
                raise StageFailed(f"mlflow server exited with status {proc.returncode}")
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait(timeout=30)
            print("tracking-server: stopped", flush=True)
