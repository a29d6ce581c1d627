"""Pipeline runs logged to a real `mlflow server` on PostgreSQL at 127.0.0.1, read back through its REST API."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from tests.project import BIN, ROOT, dvc, free_port, project_copy, require_postgres

pytestmark = pytest.mark.slow


def wait_for(url: str, server: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError(f"mlflow server did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.5)


def api(url: str, endpoint: str, body: dict | None = None, **query: str) -> dict:
    full = f"{url}/api/2.0/mlflow/{endpoint}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(full, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_two_runs_side_by_side_on_a_team_server_backed_by_postgresql(tmp_path):
    """`reprovision tracking-server`: PostgreSQL + `mlflow server`; two experiments' runs read back through it."""
    require_postgres()
    port, work = free_port(), project_copy(ROOT, tmp_path / "project")
    url = f"http://127.0.0.1:{port}"
    # Under /tmp, not pytest's private tmp_path: PostgreSQL runs as its own user and must reach it.
    store = Path(tempfile.mkdtemp(prefix="reprovision-server-", dir="/tmp"))
    store.chmod(0o755)
    # A file, not a pipe: the server's access log outgrows a pipe's buffer long before the test
    # reads it, and a server blocked writing a log line answers nothing.
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [
                str(BIN / "reprovision"),
                "tracking-server",
                "--dir",
                str(store / "server"),
                "--port",
                str(port),
                "--db-port",
                str(free_port()),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(url, server, log)
        # Two queued experiments in parallel workers: both write to the server, and race to
        # register their models, at the same time.
        for lr in ("0.002", "0.0005"):
            dvc(work, "exp", "run", "--queue", "-S", f"optim.lr={lr}", "-S", "trainer.max_epochs=3")
        dvc(work, "queue", "start", "-j", "2", MLFLOW_TRACKING_URI=url)
        deadline = time.monotonic() + 300
        while "Queued" in (status := dvc(work, "queue", "status")) or "Running" in status:
            assert time.monotonic() < deadline, status
            time.sleep(2)
        assert status.count("Success") == 2, status
        assert not (work / "mlflow.db").exists()  # nothing went to the embedded store

        experiment = api(url, "experiments/get-by-name", experiment_name="reprovision")["experiment"]
        runs = api(url, "runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
        assert len(runs) == 2
        params = [{p["key"]: p["value"] for p in r["data"]["params"]} for r in runs]
        assert sorted(p["optim.lr"] for p in params) == ["0.0005", "0.002"]
        assert {p["model.name"] for p in params} == {"cnn"}  # what did not change is there too
        for r in runs:
            history = api(url, "metrics/get-history", run_id=r["info"]["run_id"], metric_key="val/acc")
            assert [m["step"] for m in history["metrics"]] == [1, 2, 3]
            assert any(m["key"] == "test/acc" for m in r["data"]["metrics"])
            artifacts = api(url, "artifacts/list", run_id=r["info"]["run_id"], path="evaluation")
            assert any(f["path"].endswith("confusion_matrix.png") for f in artifacts["files"])
        # Both registered; `champion` on the run with the better validation accuracy.
        (alias,) = api(url, "registered-models/get", name="digits-classification")["registered_model"]["aliases"]
        champion = api(url, "model-versions/get", name="digits-classification", version=alias["version"])
        val_acc = {
            r["info"]["run_id"]: {m["key"]: m["value"] for m in r["data"]["metrics"]}["best/val/acc"] for r in runs
        }
        assert alias["alias"] == "champion" and val_acc[champion["model_version"]["run_id"]] == max(val_acc.values())
    finally:
        server.terminate()
        server.wait(timeout=60)
    output = log.read_text()
    assert "postgresql+psycopg://" in output and "tracking-server: stopped" in output
    assert not (store / "server" / "postgres" / "postmaster.pid").exists()  # the database stopped cleanly
    shutil.rmtree(store)
