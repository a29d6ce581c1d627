"""download: real formats from a loopback server or a directory; bad input leaves data/raw as it was."""

from __future__ import annotations

import gzip
import io
import logging
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.data.formats import (
    ROOT,
    cifar_batch,
    data_config,
    gz,
    idx_bytes,
    md5,
    mnist_like,
    tar_gz,
    use_fixture_checksums,
)

from reprovision.data.cifar import CIFAR10_CLASSES
from reprovision.data.raw import RawFile
from reprovision.data.sources import SOURCES, check_manifest, download, read
from reprovision.data.verify import verify_file
from reprovision.errors import DataError
from reprovision.files import read_json
from reprovision.urls import masked


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture
def raw_with_digits(tmp_path) -> Path:
    """data/raw as a user has it after an earlier good download: must survive every failure."""
    raw = tmp_path / "project" / "raw"
    download(data_config(), raw)
    return raw


def assert_refused(cfg, raw: Path, message: str) -> None:
    before = snapshot(raw)
    with pytest.raises(DataError) as err:
        download(cfg, raw)
    assert message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)
    assert snapshot(raw) == before
    assert sorted(p.name for p in raw.parent.iterdir()) == ["raw"]  # no temporary left behind


# --- digits, the embedded default -------------------------------------------------------------


def test_digits_download_writes_verified_files_and_manifest(tmp_path):
    manifest = download(data_config(), tmp_path / "raw")
    assert set(manifest["files"]) == {"digits.csv.gz"}
    assert read_json(tmp_path / "raw" / "manifest.json") == manifest
    check_manifest(tmp_path / "raw", manifest)
    raw = read("digits", tmp_path / "raw", data_config())
    assert raw.x_train.shape == (1797, 1, 8, 8) and raw.x_train.dtype == np.uint8
    assert np.bincount(raw.y_train).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_changed_raw_file_is_refused_before_reading(raw_with_digits):
    with gzip.open(raw_with_digits / "digits.csv.gz", "wb") as f:
        f.write(b"0,0,0\n")
    with pytest.raises(DataError, match="differs from its download manifest"):
        check_manifest(raw_with_digits, read_json(raw_with_digits / "manifest.json"))


# --- MNIST: the real files, from a directory and over HTTP -----------------------------------


def test_mnist_from_a_directory_mirror(tmp_path, monkeypatch):
    files = mnist_like()  # the four official file names, IDX inside gzip as published
    use_fixture_checksums(monkeypatch, "mnist", **{n: {"content_md5": md5(d)} for n, d in files.items()})
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, data in files.items():
        (mirror / name).write_bytes(gz(data))
    cfg = data_config("data=mnist", f"data.mirror={mirror}")
    download(cfg, tmp_path / "raw")
    assert {n: (tmp_path / "raw" / n).read_bytes() for n in files} == {n: gz(d) for n, d in files.items()}
    raw = read("mnist", tmp_path / "raw", cfg)
    assert raw.x_train.shape == (30, 1, 28, 28) and raw.x_test.shape == (10, 1, 28, 28)
    assert raw.x_train.tobytes() == files["train-images-idx3-ubyte.gz"][16:]  # the pixels, after the header
    assert raw.y_test.tolist() == list(range(10))


def test_mnist_over_http_accepts_a_recompressed_copy(tmp_path, http_server, monkeypatch):
    files = mnist_like()
    # As the registry knows MNIST: by the md5 of each file's content, not of the published .gz.
    use_fixture_checksums(monkeypatch, "mnist", **{n: {"content_md5": md5(d)} for n, d in files.items()})
    for name, data in files.items():
        http_server[name] = gz(data, level=1)  # same content, other bytes than the published gz(data)
        assert md5(gz(data, level=1)) != md5(gz(data))
    cfg = data_config("data=mnist", f"data.mirror={http_server.url}")
    download(cfg, tmp_path / "raw")
    assert read_json(tmp_path / "raw" / "manifest.json")["dataset"] == "mnist"
    raw = read("mnist", tmp_path / "raw", cfg)
    assert raw.x_test.tobytes() == files["t10k-images-idx3-ubyte.gz"][16:]


def test_fashion_mnist_reads_the_idx_format_from_a_mirror_that_recompresses(tmp_path, http_server, monkeypatch):
    files = mnist_like()
    for name, data in files.items():
        http_server[name] = gz(data, level=1)  # re-compressed: other bytes than the published .gz
    # The real checksums are for the real files: point both kinds at the fixture's.
    known = {n: {"content_md5": md5(d), "file_md5": md5(gz(d))} for n, d in files.items()}
    use_fixture_checksums(monkeypatch, "fashion_mnist", **known)
    cfg = data_config("data=fashion_mnist", f"data.mirror={http_server.url}")
    download(cfg, tmp_path / "raw")
    raw = read("fashion_mnist", tmp_path / "raw", cfg)
    assert raw.x_train.shape == (30, 1, 28, 28) and raw.classes[0] == "T-shirt/top"


def test_every_idx_file_is_checked_by_content_so_recompressed_mirrors_pass():
    for name in ("mnist", "fashion_mnist"):
        assert all(f.content_md5 for f in SOURCES[name].files), name


def test_a_file_known_only_by_its_compressed_md5_says_what_to_serve(tmp_path):
    data = idx_bytes(np.arange(10))
    (tmp_path / "labels.gz").write_bytes(gz(data, level=1))
    with pytest.raises(DataError) as e:
        verify_file(tmp_path / "labels.gz", RawFile("labels.gz", file_md5=md5(gz(data))))
    assert "None" not in str(e.value)
    assert "only the compressed file's md5 is published" in str(e.value)
    assert "serve the original file" in str(e.value)
    assert verify_file(tmp_path / "labels.gz", RawFile("labels.gz", file_md5=md5(gz(data, level=1))))


# --- CIFAR-10: official python batches; pickles read only once verified ----------------------


def test_cifar10_official_format_over_http(tmp_path, http_server, monkeypatch, cifar_members):
    use_fixture_checksums(
        monkeypatch,
        "cifar10",
        **{"cifar-10-python.tar.gz": {"members": {n: md5(d) for n, d in cifar_members.items()}}},
    )
    # Members in another order and another compression level: the content still matches.
    http_server["cifar-10-python.tar.gz"] = tar_gz(dict(reversed(list(cifar_members.items()))), level=1)
    cfg = data_config("data=cifar10", f"data.mirror={http_server.url}")
    download(cfg, tmp_path / "raw")
    raw = read("cifar10", tmp_path / "raw", cfg)
    # Each row of a batch's data is the image's red plane, then green, then blue (CIFAR's layout).
    batches = [pickle.loads(cifar_members[f"cifar-10-batches-py/data_batch_{i}"]) for i in range(1, 6)]
    expected = np.concatenate([b[b"data"] for b in batches]).reshape(100, 3, 32, 32)
    assert np.array_equal(raw.x_train, expected)  # planes decoded the right way round
    assert raw.y_test.tolist() == pickle.loads(cifar_members["cifar-10-batches-py/test_batch"])[b"labels"]
    # The class names read from the archive's batches.meta, and the constant it was built from,
    # are CIFAR-10's published ones.
    published = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert raw.classes == published
    assert published == CIFAR10_CLASSES


def test_cifar_pickle_that_runs_code_is_refused(tmp_path, http_server, monkeypatch, cifar_members):
    marker = tmp_path / "pwned"

    class RunsCode:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    members = dict(cifar_members)
    members["cifar-10-batches-py/data_batch_1"] = pickle.dumps({b"data": RunsCode()}, protocol=4)
    # Even with a matching checksum (a compromised mirror *and* checksum list), nothing runs.
    use_fixture_checksums(
        monkeypatch,
        "cifar10",
        **{"cifar-10-python.tar.gz": {"members": {n: md5(d) for n, d in members.items()}}},
    )
    http_server["cifar-10-python.tar.gz"] = tar_gz(members)
    cfg = data_config("data=cifar10", f"data.mirror={http_server.url}")
    download(cfg, tmp_path / "raw")
    with pytest.raises(DataError, match=r"refusing to unpickle (posix|os)\.system"):
        read("cifar10", tmp_path / "raw", cfg)
    assert not marker.exists()


def test_cifar_member_with_wrong_checksum_is_never_unpickled(tmp_path, http_server, monkeypatch, cifar_members):
    use_fixture_checksums(
        monkeypatch,
        "cifar10",
        **{"cifar-10-python.tar.gz": {"members": {n: md5(d) for n, d in cifar_members.items()}}},
    )
    members = dict(cifar_members)
    members["cifar-10-batches-py/data_batch_3"] = cifar_batch(np.zeros((20, 32, 32, 3), np.uint8), [0] * 20)
    http_server["cifar-10-python.tar.gz"] = tar_gz(members)
    raw = tmp_path / "raw"
    with pytest.raises(DataError, match="member cifar-10-batches-py/data_batch_3 missing or changed"):
        download(data_config("data=cifar10", f"data.mirror={http_server.url}"), raw)
    assert not raw.exists()


# --- bad input: one clear line, non-zero, data/raw exactly as it was --------------------------


@pytest.fixture
def served_mnist(http_server, monkeypatch):
    files = mnist_like()
    use_fixture_checksums(monkeypatch, "mnist", **{n: {"content_md5": md5(d)} for n, d in files.items()})
    for name, data in files.items():
        http_server[name] = gz(data)
    return http_server, files


def test_wrong_checksum(raw_with_digits, served_mnist):
    server, files = served_mnist
    server["t10k-labels-idx1-ubyte.gz"] = gz(idx_other := files["t10k-labels-idx1-ubyte.gz"][:-1] + b"\x07")
    assert idx_other != files["t10k-labels-idx1-ubyte.gz"]
    assert_refused(data_config("data=mnist", f"data.mirror={server.url}"), raw_with_digits, "checksum mismatch")


def test_truncated_file(raw_with_digits, served_mnist):
    server, files = served_mnist
    server["train-images-idx3-ubyte.gz"] = gz(files["train-images-idx3-ubyte.gz"])[:-200]
    assert_refused(
        data_config("data=mnist", f"data.mirror={server.url}"),
        raw_with_digits,
        "truncated: the compressed data ends early",
    )


def test_html_error_page_instead_of_the_file(raw_with_digits, served_mnist):
    server, _ = served_mnist
    server["train-labels-idx1-ubyte.gz"] = b"<!DOCTYPE html><html><body>Rate limit exceeded</body></html>"
    assert_refused(
        data_config("data=mnist", f"data.mirror={server.url}"),
        raw_with_digits,
        "the source sent an HTML page instead of the file",
    )


def test_unreachable_mirror(raw_with_digits, closed_port_url, caplog):
    with caplog.at_level(logging.WARNING, logger="reprovision.download"):
        assert_refused(data_config("data=mnist", f"data.mirror={closed_port_url}"), raw_with_digits, "no source worked")
    assert "unreachable" in caplog.text and closed_port_url in caplog.text


def test_sources_are_tried_in_order_and_each_failure_logged(
    tmp_path, served_mnist, closed_port_url, monkeypatch, caplog
):
    server, _ = served_mnist
    # The mirror is down; the next source (standing in for the official URL) works.
    monkeypatch.setitem(
        SOURCES,
        "mnist",
        SOURCES["mnist"].__class__(**{**SOURCES["mnist"].__dict__, "urls": lambda: (server.url,)}),
    )
    with caplog.at_level(logging.WARNING, logger="reprovision.download"):
        download(data_config("data=mnist", f"data.mirror={closed_port_url}"), tmp_path / "raw")
    assert caplog.text.count("trying the next source") == 4  # one line per file


def test_truncated_archive(raw_with_digits, tmp_path):
    archive = tmp_path / "images.tar.gz"
    archive.write_bytes(tar_gz({f"train/{c}/{i}.png": png(i) for c in "ab" for i in range(3)})[:-100])
    assert_refused(imagefolder(archive), raw_with_digits, "unreadable archive")


@pytest.mark.parametrize(
    ("member", "message"),
    [
        ("../escape.png", "points outside the archive"),
        ("train/a/../../../escape.png", "points outside the archive"),
        ("/etc/escape.png", "has an absolute path"),
    ],
)
def test_archive_member_escaping_the_target(raw_with_digits, tmp_path, member, message):
    members = {f"train/{c}/{i}.png": png(i) for c in "ab" for i in range(3)}
    members[member] = png(9)
    archive = tmp_path / "images.tar.gz"
    archive.write_bytes(tar_gz(members))
    assert_refused(imagefolder(archive), raw_with_digits, message)


def test_archive_with_a_symlink(raw_with_digits, tmp_path):
    archive = tmp_path / "images.tar"
    with tarfile.open(archive, "w") as tar:
        for c in "ab":
            add(tar, f"train/{c}/0.png", png(0))
        link = tarfile.TarInfo("train/a/1.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    assert_refused(imagefolder(archive), raw_with_digits, "is a link")


def test_zip_member_escaping_the_target(raw_with_digits, tmp_path):
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("train/a/0.png", png(0))
        zf.writestr("train/b/0.png", png(1))
        zf.writestr("../../evil.png", png(2))
    assert_refused(imagefolder(archive), raw_with_digits, "points outside the archive")


def test_image_folder_with_an_empty_class(raw_with_digits, tmp_path):
    folder = image_folder(tmp_path / "imgs", {"train": {"cat": 3, "dog": 3}})
    (folder / "train" / "bird").mkdir()
    assert_refused(imagefolder(folder), raw_with_digits, "class 'bird' in train/ has no images")


def test_image_folder_with_a_missing_class(raw_with_digits, tmp_path):
    folder = image_folder(tmp_path / "imgs", {"train": {"cat": 3, "dog": 3}, "test": {"cat": 2}})
    assert_refused(imagefolder(folder), raw_with_digits, "class 'dog' is missing from test/")


def test_corrupt_image_file(raw_with_digits, tmp_path):
    folder = image_folder(tmp_path / "imgs", {"train": {"cat": 3, "dog": 3}})
    (folder / "train" / "dog" / "1.png").write_bytes(png(1)[:40])
    assert_refused(imagefolder(folder), raw_with_digits, "train/dog/1.png is not a readable image")


# --- image folders that work -----------------------------------------------------------------


def test_image_folder_is_decoded_converted_and_resized(tmp_path):
    folder = image_folder(tmp_path / "imgs", {"train": {"cat": 4, "dog": 5}}, size=(20, 12))
    cfg = data_config("data=imagefolder", f"data.path={folder}", "data.channels=1", "data.image_size=8")
    download(cfg, tmp_path / "raw")
    raw = read("imagefolder", tmp_path / "raw", cfg)
    assert raw.x_train.shape == (9, 1, 8, 8) and raw.x_test is None  # split will hold out a test set
    assert raw.classes == ["cat", "dog"] and np.bincount(raw.y_train).tolist() == [4, 5]


def test_image_folder_archive_with_a_root_folder_and_test_split(tmp_path):
    folder = image_folder(tmp_path / "imgs" / "pets", {"train": {"cat": 2, "dog": 2}, "test": {"cat": 1, "dog": 1}})
    archive = tmp_path / "pets.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(folder.rglob("*.png")):
            zf.write(p, p.relative_to(folder.parent).as_posix())
    cfg = data_config("data=imagefolder", f"data.path={archive}", "data.image_size=16")
    download(cfg, tmp_path / "raw")
    raw = read("imagefolder", tmp_path / "raw", cfg)
    assert raw.x_train.shape == (4, 3, 16, 16) and raw.x_test.shape == (2, 3, 16, 16)


def test_credentials_in_a_mirror_url_are_masked():
    assert masked("https://alice:s3cret@mirror.example/data/") == "https://***@mirror.example/data/"
    assert masked("/srv/datasets/mnist") == "/srv/datasets/mnist"


# --- helpers ---------------------------------------------------------------------------------


def png(seed: int, size: tuple[int, int] = (10, 10)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def image_folder(root: Path, layout: dict[str, dict[str, int]], size=(10, 10)) -> Path:
    for split, classes in layout.items():
        for cls, n in classes.items():
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                (root / split / cls / f"{i}.png").write_bytes(png(i, size))
    return root


def imagefolder(path: Path):
    return data_config("data=imagefolder", f"data.path={path}")


def test_cli_failure_is_one_line_per_source_then_the_error(tmp_path, closed_port_url):
    """What a user sees from `dvc repro` when the mirror is down: no traceback, exit 2."""
    import subprocess
    import sys

    import yaml

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"] = {**params["data"], "name": "cifar10", "mirror": closed_port_url}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            NO_OFFICIAL_URLS + "main(['download', '--params', 'params.yaml', '--out', 'raw']))",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith(f"download: cifar-10-python.tar.gz from {closed_port_url}: unreachable")
    assert lines[-1].startswith("reprovision download: error: cifar-10-python.tar.gz: no source worked")
    assert "Traceback" not in proc.stderr and "%|" not in proc.stderr  # no progress bar in a pipe
    assert not (tmp_path / "raw").exists()


# The subprocess must not reach the internet either: drop the official URLs there too.
NO_OFFICIAL_URLS = (
    "import dataclasses, sys; from reprovision.data import sources; from reprovision.cli import main; "
    "sources.SOURCES['cifar10'] = dataclasses.replace(sources.SOURCES['cifar10'], urls=lambda: ()); "
    "sys.exit("
)
