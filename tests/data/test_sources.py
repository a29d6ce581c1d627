"""The embedded digits dataset: real files, verified checksums, nothing half-written."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from reprovision.data.sources import SOURCES, check_manifest, read_digits
from reprovision.errors import DataError
from reprovision.files import read_json
from reprovision.stages.download import download


def test_download_writes_verified_files_and_manifest(tmp_path):
    manifest = download("digits", tmp_path / "raw")
    entry = manifest["files"]["digits.csv.gz"]
    assert entry["content_sha256"] == SOURCES["digits"].files[0].content_sha256
    assert read_json(tmp_path / "raw" / "manifest.json") == manifest
    check_manifest(tmp_path / "raw", manifest)  # does not raise


def test_digits_are_the_real_1797_images(tmp_path):
    download("digits", tmp_path)
    raw = read_digits(tmp_path)
    assert raw.x_train.shape == (1797, 1, 8, 8) and raw.x_train.dtype == np.uint8
    assert raw.x_train.max() == 255 and raw.x_train.min() == 0
    assert np.bincount(raw.y_train).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert raw.classes == [str(d) for d in range(10)]


def test_changed_raw_file_is_refused(tmp_path):
    manifest = download("digits", tmp_path)
    with gzip.open(tmp_path / "digits.csv.gz", "wb") as f:
        f.write(b"0,0,0\n")
    with pytest.raises(DataError, match="differs from its download manifest"):
        check_manifest(tmp_path, manifest)


def test_wrong_content_is_rejected_and_previous_download_kept(tmp_path, monkeypatch):
    out = tmp_path / "raw"
    download("digits", out)
    before = (out / "digits.csv.gz").read_bytes()

    def fetch_garbage(dest):
        with gzip.open(dest / "digits.csv.gz", "wb") as f:
            f.write(b"<html>not the dataset</html>")
        return "a broken mirror"

    monkeypatch.setitem(
        SOURCES,
        "digits",
        SOURCES["digits"].__class__(
            description="", files=SOURCES["digits"].files, fetch=fetch_garbage, read=read_digits
        ),
    )
    with pytest.raises(DataError, match="does not match the known"):
        download("digits", out)
    assert (out / "digits.csv.gz").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_unknown_dataset_names_the_choices(tmp_path):
    with pytest.raises(DataError, match="choose one of digits"):
        download("imagenet", tmp_path / "raw")
