"""Mirrors as they are met: behind a password, trickling, killed mid-download. The real download
command each time; the password in no output; data/raw as it was when the download fails."""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf
from tests.data.formats import ROOT, gz, md5, mnist_like, use_fixture_checksums

from reprovision.cli import main
from reprovision.config import compose, validate
from reprovision.data import sources
from reprovision.errors import ConfigError
from reprovision.urls import basic_auth

USER, PASSWORD = "bob", "hunter2:@x"  # `:` and `@` percent-encoded in the URL
SECRET = "hunter2"
URL_PASSWORD = "hunter2%3A%40x"


@pytest.fixture
def mnist_files(monkeypatch) -> dict[str, bytes]:
    """Small MNIST-format files (gzipped) whose checksums the registry then knows."""
    files = mnist_like()
    use_fixture_checksums(monkeypatch, "mnist", **{n: {"content_md5": md5(d)} for n, d in files.items()})
    return {name: gz(data) for name, data in files.items()}


def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def guarded(mnist_files) -> Iterator[str]:
    """A mirror that answers only with the right Basic auth; host:port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != basic_auth(USER, PASSWORD):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="data"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = mnist_files[self.path.rsplit("/", 1)[-1]]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    yield from serve(Handler)


@pytest.fixture
def trickle() -> Iterator[str]:
    """A mirror that answers, promises 100 kB, then sends a byte every 0.1 s (for 15 s at most)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(150):
                    self.wfile.write(b"\x1f")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:  # the client gave up
                pass

        def log_message(self, *args) -> None:
            pass

    yield from serve(Handler)


def project_with_raw(tmp_path: Path) -> tuple[Path, Path, dict[str, bytes]]:
    """A project whose data/raw/mnist holds an earlier download, to be kept whole on failure."""
    raw = tmp_path / "project" / "data" / "raw" / "mnist"
    raw.mkdir(parents=True)
    (raw / "manifest.json").write_text('{"dataset": "earlier"}\n')
    return tmp_path / "project", raw, {"manifest.json": (raw / "manifest.json").read_bytes()}


def write_params(project: Path, *overrides: str) -> Path:
    params = project / "params.yaml"
    params.write_text(OmegaConf.to_yaml(compose(ROOT / "conf", ["data=mnist", *overrides])))
    return params


def netrc_file(tmp_path: Path, monkeypatch, host: str, password: str) -> None:
    """The mirror's login in a netrc file outside the project, as $NETRC names it (~/.netrc else)."""
    path = tmp_path / "netrc"
    path.write_text(f"machine {host.split(':')[0]} login {USER} password {password}\n")
    path.chmod(0o600)
    monkeypatch.setenv("NETRC", str(path))


def test_a_mirror_behind_a_password_is_reached_with_the_netrc_login_never_shown(
    tmp_path, guarded, monkeypatch, capsys, caplog
):
    project, raw, _ = project_with_raw(tmp_path)
    netrc_file(tmp_path, monkeypatch, guarded, PASSWORD)
    params = write_params(project, f"data.mirror=http://{guarded}/data/")
    with caplog.at_level(logging.INFO, logger="reprovision.download"):
        code = main(["download", "--params", str(params), "--out", str(raw)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads((raw / "manifest.json").read_text())["dataset"] == "mnist"
    assert f"verified (from http://{guarded}/data/)" in caplog.text
    for text in (out, err, caplog.text, (raw / "manifest.json").read_text(), params.read_text()):
        assert SECRET not in text


def test_a_password_in_the_mirror_url_is_refused_before_anything_is_read(tmp_path, guarded):
    with pytest.raises(ConfigError, match=r"data\.mirror holds a password.*~/\.netrc"):
        validate(compose(ROOT / "conf", ["data=mnist", f"data.mirror=http://{USER}:{URL_PASSWORD}@{guarded}/data/"]))


def test_a_wrong_password_is_one_line_without_it(tmp_path, guarded, monkeypatch, capsys, caplog):
    project, raw, before = project_with_raw(tmp_path)
    netrc_file(tmp_path, monkeypatch, guarded, f"wrong-{SECRET}")
    params = write_params(project, f"data.mirror=http://{guarded}/data/")
    code = main(["download", "--params", str(params), "--out", str(raw)])
    err = capsys.readouterr().err
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("reprovision download: error: ") and f"http://{guarded}/data/: HTTP 401" in line
    assert "~/.netrc" in line
    assert SECRET not in err + caplog.text
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == before
    assert sorted(p.name for p in raw.parent.iterdir()) == ["mnist"]


def test_a_trickling_mirror_is_given_up_and_the_next_source_used(
    tmp_path, trickle, mnist_files, monkeypatch, capsys, caplog
):
    local = tmp_path / "local-mirror"
    local.mkdir()
    for name, data in mnist_files.items():
        (local / name).write_bytes(data)
    monkeypatch.setitem(
        sources.SOURCES, "mnist", dataclasses.replace(sources.SOURCES["mnist"], urls=lambda: (str(local),))
    )
    project, raw, _ = project_with_raw(tmp_path)
    netrc_file(tmp_path, monkeypatch, trickle, PASSWORD)
    mirror = f"http://{USER}@{trickle}/data/"  # the user in the URL, its password from netrc
    params = write_params(project, f"data.mirror={mirror}", "data.download.timeout_s=1")
    start = time.monotonic()
    with caplog.at_level(logging.INFO, logger="reprovision.download"):
        code = main(["download", "--params", str(params), "--out", str(raw)])
    assert code == 0, capsys.readouterr().err
    assert time.monotonic() - start < 20  # about 1 s per file, not the trickle's 15
    stalled = [r.getMessage() for r in caplog.records if "stalled" in r.getMessage()]
    assert len(stalled) == 4, caplog.text  # each file: the stalled source named, then the next one
    assert stalled[0].startswith(f"download: train-images-idx3-ubyte.gz from http://***@{trickle}/data/: stalled: ")
    assert "under data.download.min_kib_per_s=1; trying the next source" in stalled[0]
    assert caplog.text.count(f"verified (from {local})") == 4
    assert SECRET not in caplog.text + "".join(capsys.readouterr())


def test_a_mirror_sending_more_than_it_may_is_cut_off(tmp_path, capsys):
    class Endless(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # no Content-Length: the body ends when the connection does
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(bytes(1 << 20))
            except OSError:
                pass

        def log_message(self, *args) -> None:
            pass

    project, raw, before = project_with_raw(tmp_path)
    for host in serve(Endless):
        params = write_params(project, f"data.mirror=http://{host}/", "data.download.max_mib=1")
        code = main(["download", "--params", str(params), "--out", str(raw)])
    err = capsys.readouterr().err
    assert code == 2
    assert "sent more than the 1,048,576 bytes expected (data.download.max_mib)" in err.strip().splitlines()[-1]
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == before
    assert sorted(p.name for p in raw.parent.iterdir()) == ["mnist"]


# The subprocess must not reach the internet: the official URLs are dropped there too.
NO_OFFICIAL_URLS = (
    "import dataclasses, sys; from reprovision.data import sources; from reprovision.cli import main; "
    "sources.SOURCES['mnist'] = dataclasses.replace(sources.SOURCES['mnist'], urls=lambda: ()); "
    "sys.exit(main(sys.argv[1:]))"
)


def test_sigterm_during_a_download_leaves_no_temporary_and_the_old_data(tmp_path, trickle):
    project, raw, before = project_with_raw(tmp_path)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"] = {**params["data"], "name": "mnist", "mirror": f"http://{trickle}/data/"}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.Popen(
        [sys.executable, "-c", NO_OFFICIAL_URLS, "download", "--params", "params.yaml", "--out", "data/raw/mnist"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list(raw.parent.glob(".mnist.*.tmp/.partial.*")):  # the download is under way
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == "reprovision download: terminated (SIGTERM); outputs were not written"
    assert "Traceback" not in err
    assert sorted(p.name for p in raw.parent.iterdir()) == ["mnist"]  # no .mnist.*.tmp left
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == before
