"""A tracking server behind HTTP Basic auth, its login in the environment (never in the config,
which git keeps): train, resume and evaluate all reach it, and the password is in no file, log,
param or tag."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from mlflow.tracking import MlflowClient
from tests.training.test_resume import digits, in_process, train_cmd  # noqa: F401 (digits: a fixture)

from reprovision.urls import basic_auth

USER, PASSWORD = "alice", "s3cr@t"  # `@` percent-encoded in the URI
SECRET = "s3cr"


class _Threaded(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path, monkeypatch) -> Iterator[dict]:
    """MLflow's own server app on 127.0.0.1, answering only requests with the right Basic auth."""
    import mlflow.server.handlers as handlers

    monkeypatch.setenv("_MLFLOW_SERVER_FILE_STORE", f"sqlite:///{tmp_path / 'server.db'}")
    monkeypatch.setenv("_MLFLOW_SERVER_ARTIFACT_ROOT", "mlflow-artifacts:/")
    monkeypatch.setenv("_MLFLOW_SERVER_SERVE_ARTIFACTS", "true")
    monkeypatch.setenv("_MLFLOW_SERVER_ARTIFACT_DESTINATION", str(tmp_path / "artifacts"))
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, "")  # unset now, and again afterwards whatever the run sets
        monkeypatch.delenv(name)
    monkeypatch.setattr(handlers, "_tracking_store", None)
    monkeypatch.setattr(handlers, "_model_registry_store", None)
    import mlflow
    from mlflow.server import app

    # Open the server's stores now: opening one points this process's MLflow at it (the
    # environment and the global URI), which a real server, a process of its own, never does here.
    handlers._get_tracking_store()
    handlers._get_model_registry_store()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(None)
    refused: list[str] = []

    def guarded(environ, start_response):
        if environ.get("HTTP_AUTHORIZATION") != basic_auth(USER, PASSWORD):
            refused.append(environ["PATH_INFO"])
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="mlflow"')])
            return [b""]
        return app(environ, start_response)

    httpd = make_server("127.0.0.1", 0, guarded, server_class=_Threaded, handler_class=_Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    yield {"port": port, "uri": f"http://127.0.0.1:{port}", "login": f"http://{USER}:s3cr%40t@127.0.0.1:{port}",
           "refused": refused}  # fmt: skip
    httpd.shutdown()
    httpd.server_close()


def test_the_login_in_mlflows_variables_reaches_the_server_and_nothing_else(digits, server, capsys, monkeypatch):  # noqa: F811
    from reprovision import tracking
    from reprovision.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    where = digits / "credentials"
    cmd = train_cmd(digits, where, "trainer.max_epochs=2", f"tracking.uri={server['uri']}")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    # Interrupted while its model goes to MLflow: resume.json is left, as after a kill.
    with monkeypatch.context() as patched:
        patched.setattr(tracking, "log_model", interrupt)
        code, out, err = in_process(cmd, capsys)
    assert code == 130, err
    written = {"resume.json": (where / "checkpoints" / "resume.json").read_text()}
    assert json.loads(written["resume.json"])["run"]["tracking_uri"] == f"http://127.0.0.1:{server['port']}"

    code, out2, err2 = in_process(cmd, capsys)  # the resume reopens the run from resume.json
    assert code == 0, err2
    assert "resuming from" in out2
    run_file = next(where.rglob("run.json"))
    written["run.json"] = run_file.read_text()

    params = where / "params.yaml"
    capsys.readouterr()
    evaluate = ["evaluate", "--params", str(params), "--model", str(where / "models"), "--run", str(run_file)]
    evaluate += ["--split", str(digits / "split"), "--data", str(digits / "normalised")]
    code = main([*evaluate, "--out", str(where / "metrics")])
    out3, err3 = capsys.readouterr()
    assert code == 0, err3

    assert server["refused"] == []  # every request carried the credentials
    run_id = json.loads(written["run.json"])["run_id"]
    client = MlflowClient(server["login"])
    run = client.get_run(run_id)
    assert "test/acc" in run.data.metrics and run.info.status == "FINISHED"  # evaluate reached it too
    config = Path(client.download_artifacts(run_id, "config/params.yaml", str(where / "dl"))).read_text()
    for name, text in {
        **written,
        "params": json.dumps(run.data.params),
        "tags": json.dumps(run.data.tags),
        "config artifact": config,
        "output": out + err + out2 + err2 + out3 + err3,
    }.items():
        assert SECRET not in text, name
    assert run.data.params["tracking.uri"] == server["uri"]


def test_wrong_credentials_are_refused_before_training_in_one_line(digits, server, capsys, monkeypatch):  # noqa: F811
    where = digits / "wrong-credentials"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://{USER}:nope-{SECRET}@127.0.0.1:{server['port']}")
    code, _, err = in_process(train_cmd(digits, where), capsys)
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"reprovision train: error: MLflow tracking server http://***@127.0.0.1:{server['port']}")
    assert "refused the credentials (HTTP 401)" in line and SECRET not in err
    assert not (where / "checkpoints").exists()


def test_a_password_in_the_configured_tracking_uri_is_refused_naming_mlflows_variables(digits, server, capsys):  # noqa: F811
    where = digits / "password-in-config"
    code, _, err = in_process(train_cmd(digits, where, f"tracking.uri={server['login']}"), capsys)
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("reprovision train: error: tracking.uri holds a password")
    assert "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in line and SECRET not in err
    assert not (where / "checkpoints").exists()
