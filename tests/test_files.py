"""Outputs appear whole or not at all."""

from __future__ import annotations

import pytest

from reprovision.files import atomic_dir, atomic_file, read_json, write_json


def test_failed_write_keeps_previous_directory(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed mid-write")
    assert (out / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left behind


def test_failed_write_keeps_previous_file(tmp_path):
    path = tmp_path / "m.json"
    write_json(path, {"acc": 1})
    with pytest.raises(RuntimeError), atomic_file(path) as tmp:
        tmp.write_text("{")
        raise RuntimeError
    assert read_json(path) == {"acc": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_json_is_stable(tmp_path):
    write_json(tmp_path / "a.json", {"b": 1, "a": 2})
    write_json(tmp_path / "b.json", {"a": 2, "b": 1})
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
