"""Fixtures for dataset tests: official-format files served from 127.0.0.1 only."""

from __future__ import annotations

import dataclasses
import pickle
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pytest
from tests.data.formats import cifar_batch

from reprovision.data import sources
from reprovision.data.digits import sklearn_data_dir


@pytest.fixture(autouse=True)
def no_official_urls(monkeypatch):
    """Tests never reach the internet: only data.mirror (a loopback server or a directory) is tried,
    or scikit-learn's own data directory (digits, diabetes)."""
    for name, src in list(sources.SOURCES.items()):
        if src.urls is not sklearn_data_dir:
            monkeypatch.setitem(sources.SOURCES, name, dataclasses.replace(src, urls=lambda: ()))


@pytest.fixture(scope="session")
def cifar_members() -> dict[str, bytes]:
    """The official CIFAR-10 archive's members (python batches, batches.meta) in CIFAR's own format,
    holding seeded random pixels: five training batches of 20 images, a test batch of 20."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(100, 32, 32, 3), dtype=np.uint8)  # (N, H, W, C), as CIFAR's docs show it
    xt = rng.integers(0, 256, size=(20, 32, 32, 3), dtype=np.uint8)
    y, yt = rng.permutation(np.arange(100) % 10), rng.permutation(np.arange(20) % 10)
    members = {
        f"cifar-10-batches-py/data_batch_{i + 1}": cifar_batch(x[i * 20 : (i + 1) * 20], y[i * 20 : (i + 1) * 20])
        for i in range(5)
    }
    members["cifar-10-batches-py/test_batch"] = cifar_batch(xt, yt)
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps(
        {b"label_names": [c.encode() for c in sources.CIFAR10_CLASSES]}, protocol=4
    )
    return members


class _Handler(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        body = self.files.get(name)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # quiet test output
        pass


@pytest.fixture
def http_server() -> Iterator[dict[str, bytes]]:
    """A loopback HTTP server; put name -> bytes into the yielded dict; its URL is `.url`."""
    files: ClassVar[dict[str, bytes]] = {}
    handler = type("Handler", (_Handler,), {"files": files})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    served = ServedFiles(files, f"http://127.0.0.1:{server.server_address[1]}/data/")
    yield served
    server.shutdown()
    server.server_close()


class ServedFiles(dict):
    def __init__(self, files: dict[str, bytes], url: str) -> None:
        super().__init__()
        self.files, self.url = files, url

    def __setitem__(self, key: str, value: bytes) -> None:
        self.files[key] = value


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"
