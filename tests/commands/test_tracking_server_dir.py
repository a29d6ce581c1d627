"""`reprovision tracking-server --dir` with a name a shell would act on: nothing runs, and the
server works there."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from mlflow.tracking import MlflowClient
from tests.project import free_port, require_postgres


@pytest.fixture
def base() -> Path:
    """Under /tmp, not pytest's private tmp_path: PostgreSQL runs as its own user and must reach it.
    Commands run here, so a shell that ran the hostile name would leave PWNED here."""
    base = Path(tempfile.mkdtemp(prefix="rp-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base)


HOSTILE = "x $(touch${IFS}PWNED)"  # a space, and a command substitution


def test_the_database_starts_in_a_directory_whose_name_a_shell_would_run(base, monkeypatch):
    require_postgres()
    import psycopg
    from sqlalchemy.engine import make_url

    from reprovision.commands.tracking_server import postgres

    monkeypatch.chdir(base)
    with postgres(base / HOSTILE, free_port()) as uri:
        query = make_url(uri).query  # as MLflow's SQLAlchemy reads it
        with psycopg.connect(host=query["host"], port=query["port"], user="mlflow", dbname="mlflow") as db:
            assert db.execute("select 1").fetchone() == (1,)
    assert not (base / "PWNED").exists(), "a shell ran the directory's name"
    assert not (base / HOSTILE / "postgres" / "postmaster.pid").exists()  # stopped cleanly
    assert sorted(p.name for p in base.iterdir()) == [HOSTILE]


@pytest.mark.slow
def test_the_tracking_server_command_in_that_directory_serves_runs_and_artifacts(base):
    require_postgres()
    hostile, port = base / HOSTILE, free_port()
    command = ["tracking-server", "--dir", str(hostile), "--port", str(port), "--db-port", str(free_port())]
    server = subprocess.Popen(
        [sys.executable, "-m", "reprovision", *command],
        cwd=base,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"},  # the default
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, server.communicate()[0][-3000:]
                assert time.monotonic() < deadline, "mlflow server did not start"
                time.sleep(0.5)
        # The server alone: MLflow's pool of GenAI job workers (huey consumers) is not started.
        started = [" ".join(p.cmdline()) for p in psutil.Process(server.pid).children(recursive=True)]
        assert not [c for c in started if "huey" in c or "jobs._job_runner" in c], started
        # The database and the artifact store in that directory both work.
        client = MlflowClient(url)
        run = client.create_run(client.create_experiment("hostile-dir"))
        client.log_text(run.info.run_id, "hello", "note.txt")
        assert list((hostile / "artifacts").rglob("note.txt"))
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0]
    assert not (base / "PWNED").exists(), "a shell ran the directory's name"
    assert server.returncode == 0, output[-3000:]
    assert "tracking-server: stopped" in output
    assert not (hostile / "postgres" / "postmaster.pid").exists(), output[-3000:]  # stopped cleanly
    assert sorted(p.name for p in base.iterdir()) == [HOSTILE]  # nothing beside it


@pytest.mark.parametrize(("name", "message"), [("a,b", "a comma"), ("x" * 100, "too long for a socket path")])
def test_a_directory_postgresql_cannot_use_is_refused_in_one_line(tmp_path, capsys, name, message):
    require_postgres()
    from reprovision.cli import main

    assert main(["tracking-server", "--dir", str(tmp_path / name)]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("reprovision tracking-server: error: --dir") and message in line
    assert "\n" not in line and not (tmp_path / name).exists()
