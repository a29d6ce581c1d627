"""Archive bombs and odd folders through the real download command: one line, exit 2, bounded
memory, data/raw as it was; a user's folder with hard links is packed, not refused."""

from __future__ import annotations

import io
import os
import struct
import tarfile
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image
from tests.data.formats import ROOT, data_config

from reprovision.cli import main
from reprovision.config import compose
from reprovision.data.archives import Limits
from reprovision.data.sources import download, read

MIB = 1 << 20


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


class Zeros(io.RawIOBase):
    """`size` zero bytes, read in chunks: a bomb's member built without holding it in memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def tar_gz_of_zeros(path: Path, name: str, size: int, others: dict[str, bytes] | None = None) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=9) as tar:
        for other, data in (others or {}).items():
            info = tarfile.TarInfo(other)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo(name)
        info.size = size
        tar.addfile(info, io.BufferedReader(Zeros(size)))
    return path


def zip_of_zeros(path: Path, name: str, size: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("train/a/0.png", png(0))
        with zf.open(name, "w") as f:
            for _ in range(size // MIB):
                f.write(bytes(MIB))
    return path


@pytest.fixture
def project(tmp_path) -> Path:
    """A project whose data/raw holds an earlier good download: every refusal must leave it so."""
    raw = tmp_path / "project" / "data" / "raw"
    download(data_config(), raw)
    return tmp_path / "project"


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def refused(project: Path, capsys, *overrides: str) -> tuple[str, int]:
    """Run `reprovision download` on `overrides`; assert exit 2, one line, data/raw untouched and
    no temporary left. Returns the line and the peak of Python memory while it ran."""
    params = project / "params.yaml"
    params.write_text(OmegaConf.to_yaml(compose(ROOT / "conf", list(overrides))))
    raw = project / "data" / "raw"
    before = snapshot(project)
    capsys.readouterr()
    tracemalloc.start()
    try:
        code = main(["download", "--params", str(params), "--out", str(raw)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("reprovision download: error: "), err
    assert "Traceback" not in err
    assert snapshot(project) == before
    assert sorted(p.name for p in raw.parent.iterdir()) == ["raw"]  # no .raw.*.tmp left
    return lines[-1], peak


def test_a_member_declaring_4_gib_is_refused_before_it_is_read(project, tmp_path, capsys):
    archive = tmp_path / "bomb.tar.gz"
    info = tarfile.TarInfo("train/a/big.png")
    info.size = 4 << 30  # declared; the data behind it is a few bytes
    archive.write_bytes(
        zlib.compress(info.tobuf(tarfile.PAX_FORMAT) + bytes(1024), wbits=31)  # gzip
    )
    line, peak = refused(project, capsys, "data=imagefolder", f"data.path={archive}")
    assert "member 'train/a/big.png' declares 4,294,967,296 bytes, over data.archive.max_member_mib=512" in line
    assert peak < 16 * MIB


def test_a_gzip_bomb_stops_at_the_ratio_limit_with_bounded_memory(project, tmp_path, capsys):
    archive = tar_gz_of_zeros(tmp_path / "bomb.tar.gz", "train/a/zeros.png", 64 * MIB, {"train/a/0.png": png(0)})
    assert archive.stat().st_size < 200_000  # 64 MiB in under 200 kB
    line, peak = refused(project, capsys, "data=imagefolder", f"data.path={archive}")
    assert "member 'train/a/zeros.png' inflates the archive to over" in line
    assert "over data.archive.max_ratio=200" in line
    assert peak < 40 * MIB  # not the 64 MiB member, nor twice it


def test_a_zip_bomb_is_refused_from_its_directory_before_anything_inflates(project, tmp_path, capsys):
    archive = zip_of_zeros(tmp_path / "bomb.zip", "train/a/zeros.png", 64 * MIB)
    line, peak = refused(project, capsys, "data=imagefolder", f"data.path={archive}")
    assert "member 'train/a/zeros.png'" in line and "data.archive.max_ratio=200" in line
    assert peak < 16 * MIB


def test_a_zip_member_inflating_past_its_declared_size_is_never_read_past_it(project, tmp_path, capsys):
    archive = zip_of_zeros(tmp_path / "liar.zip", "train/a/zeros.png", 32 * MIB)
    data = bytearray(archive.read_bytes())
    # The central directory (what readers trust) declares 1,000 bytes for the 32 MiB member.
    at = data.find(b"PK\x01\x02")
    while data[at + 46 : at + 46 + struct.unpack_from("<H", data, at + 28)[0]] != b"train/a/zeros.png":
        at = data.find(b"PK\x01\x02", at + 4)
    struct.pack_into("<I", data, at + 24, 1000)
    archive.write_bytes(bytes(data))
    with zipfile.ZipFile(archive) as zf:
        assert zf.getinfo("train/a/zeros.png").file_size == 1000
    line, peak = refused(project, capsys, "data=imagefolder", f"data.path={archive}")
    assert "'train/a/zeros.png'" in line
    assert peak < 16 * MIB  # the 32 MiB behind the lie never inflated


def test_too_many_members(project, tmp_path, capsys):
    folder = tmp_path / "imgs"
    for i in range(4):
        (folder / "train" / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        (folder / "train" / "ab"[i % 2] / f"{i}.png").write_bytes(png(i))
    archive = tmp_path / "imgs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(folder.rglob("*.png")):
            zf.write(p, p.relative_to(folder).as_posix())
    line, _ = refused(project, capsys, "data=imagefolder", f"data.path={archive}", "data.archive.max_members=3")
    assert "member 'train/b/3.png' is member number 4, over data.archive.max_members=3" in line
    # The same folder as a directory: refused before it is packed, naming the entry.
    line, _ = refused(project, capsys, "data=imagefolder", f"data.path={folder}", "data.archive.max_members=3")
    assert "over data.archive.max_members=3" in line


def test_a_cifar_archive_from_a_mirror_is_bounded_before_its_checksum_is_checked(
    project, tmp_path, capsys, http_server
):
    archive = tar_gz_of_zeros(tmp_path / "cifar.tar.gz", "cifar-10-batches-py/data_batch_1", 64 * MIB)
    http_server["cifar-10-python.tar.gz"] = archive.read_bytes()
    line, peak = refused(project, capsys, "data=cifar10", f"data.mirror={http_server.url}")
    assert "member 'cifar-10-batches-py/data_batch_1' inflates" in line and "data.archive.max_ratio" in line
    assert peak < 40 * MIB


def test_default_limits_let_cifar10_and_large_image_folders_through():
    limits = Limits.of(data_config().archive)
    # CIFAR-10's archive: 7 batches of up to 31,035,704 bytes, 178 MB in all, 163 MB compressed.
    assert limits.member_bytes > 31_035_704 and limits.total_bytes > 178_000_000 and limits.ratio > 2
    assert limits.members >= 60_022  # the CIFAR-10 JPEG folder's members


def test_a_folder_with_two_hard_linked_names_of_one_image_is_packed_as_two_images(tmp_path, capsys):
    folder = tmp_path / "imgs"
    for cls in ("cat", "dog"):
        (folder / "train" / cls).mkdir(parents=True)
        for i in range(2):
            (folder / "train" / cls / f"{i}.png").write_bytes(png(i + (cls == "dog") * 10))
    os.link(folder / "train" / "cat" / "0.png", folder / "train" / "cat" / "copy.png")
    params = tmp_path / "params.yaml"
    params.write_text(OmegaConf.to_yaml(compose(ROOT / "conf", ["data=imagefolder", f"data.path={folder}"])))
    code = main(["download", "--params", str(params), "--out", str(tmp_path / "raw")])
    assert code == 0, capsys.readouterr().err
    with tarfile.open(tmp_path / "raw" / "images.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile("train/cat/copy.png").read() == png(0)
    assert members["train/cat/copy.png"].isfile() and members["train/cat/0.png"].isfile()
    raw = read("imagefolder", tmp_path / "raw", data_config("data=imagefolder", f"data.path={folder}"))
    assert np.bincount(raw.y_train).tolist() == [3, 2]  # both names of the cat image count


def bilevel_png(width: int, height: int) -> bytes:
    """A real PNG of width x height black pixels: kilobytes on disk, megapixels once decoded."""
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, "PNG")
    return buf.getvalue()


def image_folder(root: Path, images: dict[str, bytes]) -> Path:
    for name, data in {"train/a/0.png": png(0), "train/b/1.png": png(1), **images}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(project, tmp_path, capsys):
    folder = image_folder(tmp_path / "imgs", {"train/a/bomb.png": bilevel_png(10_000, 10_000)})
    assert (folder / "train/a/bomb.png").stat().st_size < 20_000  # 100 megapixels in a few kilobytes
    line, _ = refused(project, capsys, "data=imagefolder", f"data.path={folder}")
    assert line.startswith("reprovision download: error: imagefolder: train/a/bomb.png is 10,000x10,000 pixels, over")
    assert "data.archive.max_image_mpixels" in line


def test_images_past_the_datasets_pixel_budget_are_refused_at_the_first_over_it(project, tmp_path, capsys):
    folder = image_folder(tmp_path / "imgs", {f"train/b/{i}.png": bilevel_png(2000, 2000) for i in range(2, 5)})
    line, _ = refused(project, capsys, "data=imagefolder", f"data.path={folder}", "data.archive.max_total_mpixels=10")
    assert "the images so far hold 12 megapixels, over the 10 the dataset may" in line
    assert "data.archive.max_total_mpixels" in line


def test_a_raised_pixel_limit_decodes_without_pils_own_warning(tmp_path, capsys, recwarn):
    folder = image_folder(tmp_path / "imgs", {"train/a/large.png": bilevel_png(9_500, 9_500)})  # over PIL's 89.5 MP
    overrides = ["data=imagefolder", f"data.path={folder}", "data.channels=1", "data.archive.max_image_mpixels=100"]
    params = tmp_path / "params.yaml"
    params.write_text(OmegaConf.to_yaml(compose(ROOT / "conf", overrides)))
    assert main(["download", "--params", str(params), "--out", str(tmp_path / "raw")]) == 0, capsys.readouterr().err
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__]


def test_a_limit_raised_past_pils_own_is_the_limit(tmp_path, capsys):
    """PIL refuses images over 179 megapixels by itself; a folder whose limit is raised past that
    decodes them (its header is what the limit reads)."""
    folder = image_folder(tmp_path / "imgs", {"train/a/huge.png": bilevel_png(14_000, 14_000)})  # 196 megapixels
    overrides = ["data=imagefolder", f"data.path={folder}", "data.channels=1", "data.archive.max_image_mpixels=300"]
    params = tmp_path / "params.yaml"
    params.write_text(OmegaConf.to_yaml(compose(ROOT / "conf", overrides)))
    assert main(["download", "--params", str(params), "--out", str(tmp_path / "raw")]) == 0, capsys.readouterr().err
