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
from collections.abc import Iterator
from pathlib import Path

from reprovision.errors import BadInput, StageFailed

DATABASE = "mlflow"


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


@contextlib.contextmanager
def postgres(directory: Path, port: int) -> Iterator[str]:
    """A PostgreSQL cluster in `directory` while the block runs; its SQLAlchemy URI.

    It listens on no TCP port, only on a Unix socket inside `directory`, which only its owner (and
    root) may enter: no other account on the machine can reach the database, whose `mlflow` role
    is a superuser (trust authentication behind a private socket, for a try-out).
    """
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
    options = f"-c listen_addresses='' -p {port} -k {directory}"
    _run(
        [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start"], f"PostgreSQL ({log})"
    )
    try:
        if fresh:
            _run(
                [str(bin_dir / "createdb"), "-h", str(directory), "-p", str(port), "-U", "mlflow", DATABASE], "createdb"
            )
        yield f"postgresql+psycopg://mlflow@/{DATABASE}?host={directory}&port={port}"
    finally:
        _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], "stopping PostgreSQL")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=Path(".tracking-server"), help="database and artifacts")
    parser.add_argument("--port", type=int, default=5000, help="the MLflow server's port on 127.0.0.1")
    parser.add_argument("--db-port", type=int, default=5433, help="PostgreSQL's socket number (no TCP port is opened)")


def run(args: argparse.Namespace) -> None:
    directory = args.dir.resolve()
    # SIGTERM ends like Ctrl-C, so the database is always stopped cleanly.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    with postgres(directory, args.db_port) as uri:
        server = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(args.port)]
        server += ["--backend-store-uri", uri, "--artifacts-destination", str(directory / "artifacts")]
        print(f"tracking-server: PostgreSQL {uri}; export MLFLOW_TRACKING_URI=http://127.0.0.1:{args.port}", flush=True)
        proc = subprocess.Popen([*server, "--workers", "1"])
        try:
            if proc.wait():
                raise StageFailed(f"mlflow server exited with status {proc.returncode}")
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait(timeout=30)
            print("tracking-server: stopped", flush=True)
