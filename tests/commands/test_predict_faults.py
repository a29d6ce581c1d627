"""`reprovision predict` and the image-folder download on hostile or broken files: one line naming
the file and what is wrong, exit 2, no traceback, nothing run."""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from reprovision.cli import main
from reprovision.config import compose, validate
from reprovision.models.module import Model

ROOT = Path(__file__).resolve().parents[2]


def png(seed: int = 0, size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A PNG header declaring width x height pixels, with one byte of pixel data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


@pytest.fixture
def model(tmp_path) -> Path:
    """A classifier checkpoint as the train stage writes one (untrained: the faults are the point)."""
    cfg = validate(compose(ROOT / "conf", ["model=cnn", "model.channels=[4,8]", "model.hidden=8"]))
    inputs = {"kind": "image", "shape": [1, 8, 8], "mean": [0.0], "std": [1.0]}
    module = Model(dataclasses.asdict(cfg.model), dataclasses.asdict(cfg.optim), "classification", ["a", "b"], inputs)
    path = tmp_path / "model.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


def predict(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["predict", *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.strip()


def test_a_good_image_is_classified(model, tmp_path, capsys):
    (tmp_path / "x.png").write_bytes(png())
    code, err = predict(capsys, str(tmp_path / "x.png"), "--model", str(model))
    assert code == 0, err


def test_an_image_declaring_50000_by_50000_pixels_is_refused(model, tmp_path, capsys):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(50_000, 50_000))
    code, err = predict(capsys, str(bomb), "--model", str(model))
    assert code == 2
    assert err.startswith(f"reprovision predict: error: {bomb} is 50,000x50,000 pixels, over the 50 megapixels")
    assert "\n" not in err


def test_a_file_that_is_no_image_is_named_not_its_buffer(model, tmp_path, capsys):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    code, err = predict(capsys, str(text), "--model", str(model))
    assert code == 2
    assert (
        err == f"reprovision predict: error: {text} is not a readable image (no format PIL knows); remove or replace it"
    )


def test_a_directory_given_as_an_image(model, tmp_path, capsys):
    code, err = predict(capsys, str(tmp_path), "--model", str(model))
    assert code == 2
    assert err.startswith(f"reprovision predict: error: {tmp_path}: a directory, not an image file")


@pytest.mark.parametrize("keep", [2000, 0.5], ids=["2000-bytes", "half"])  # torch fails each its own way
def test_a_truncated_checkpoint(model, tmp_path, capsys, keep):
    (tmp_path / "x.png").write_bytes(png())
    data = model.read_bytes()
    model.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    code, err = predict(capsys, str(tmp_path / "x.png"), "--model", str(model))
    assert code == 2
    assert err.startswith(f"reprovision predict: error: {model}: not a readable checkpoint (") and "\n" not in err


def test_a_checkpoint_of_an_unknown_net(model, tmp_path, capsys):
    (tmp_path / "x.png").write_bytes(png())
    ckpt = torch.load(model, weights_only=True)
    ckpt["hyper_parameters"]["net"]["name"] = "resnet9000"
    torch.save(ckpt, model)
    code, err = predict(capsys, str(tmp_path / "x.png"), "--model", str(model))
    assert code == 2
    assert err.startswith(
        f"reprovision predict: error: {model}: not a model checkpoint of this pipeline (net 'resnet9000'"
    )


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda c: c["hyper_parameters"].update(task="regression"), "a regression of it needs [1]"),
        (lambda c: c["hyper_parameters"]["inputs"].update(mean=[0.0, 0.0, 0.0]), "3 means and 1 stds for 1 channels"),
        (lambda c: c["hyper_parameters"]["inputs"].update(std="abc"), "invalid data type 'str'"),
        (lambda c: c["state_dict"].popitem(), "Missing key(s) in state_dict: "),
    ],
    ids=["task-swapped", "three-means-for-one-channel", "std-a-string", "a-weight-missing"],
)
def test_a_checkpoint_whose_settings_contradict_its_weights_is_refused_at_load(model, tmp_path, capsys, change, says):
    """Found when the model loads, named in one line, not as a traceback at the first prediction."""
    (tmp_path / "x.png").write_bytes(png())
    ckpt = torch.load(model, weights_only=True)
    change(ckpt)
    torch.save(ckpt, model)
    code, err = predict(capsys, str(tmp_path / "x.png"), "--model", str(model))
    assert code == 2 and "\n" not in err, err
    assert err.startswith(f"reprovision predict: error: {model}: does not fit this pipeline's cnn (") and says in err, (
        err
    )


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (float("nan"), "holds NaN or infinite values"),
        (float("inf"), "holds NaN or infinite values"),
        (1j, "holds complex numbers"),
    ],
    ids=["nan", "inf", "complex"],
)
def test_a_checkpoint_with_a_weight_no_trained_net_holds_is_refused_at_load(model, tmp_path, capsys, value, says):
    """A diverged or damaged model would load and answer NaN or garbage; it is named in one line instead."""
    (tmp_path / "x.png").write_bytes(png())
    ckpt = torch.load(model, weights_only=True)
    key = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point())
    weight = ckpt["state_dict"][key]
    weight = weight.to(torch.complex64) if isinstance(value, complex) else weight.clone()
    weight.view(-1)[-1] = value
    ckpt["state_dict"][key] = weight
    torch.save(ckpt, model)
    code, err = predict(capsys, str(tmp_path / "x.png"), "--model", str(model))
    assert code == 2 and "\n" not in err, err
    assert (
        err == f"reprovision predict: error: {model}: weight {key} {says}: a diverged or damaged model; train it again"
    )


def test_a_checkpoint_that_would_run_code_names_the_refused_global(model, tmp_path, capsys):
    marker = tmp_path / "pwned"

    class RunsCode:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "x.png").write_bytes(png())
    torch.save({"hyper_parameters": {}, "state_dict": {}, "extra": RunsCode()}, model)
    code, err = predict(capsys, str(tmp_path / "x.png"), "--model", str(model))
    assert code == 2 and not marker.exists()
    assert f"{model}: refusing to load: it would import posix.system (" in err and "\n" not in err


def test_an_image_folder_with_a_decompression_bomb_is_refused_at_download(tmp_path, capsys):
    folder = tmp_path / "imgs"
    for cls in ("a", "b"):
        (folder / "train" / cls).mkdir(parents=True)
        (folder / "train" / cls / "0.png").write_bytes(png())
    (folder / "train" / "b" / "bomb.png").write_bytes(png_declaring(50_000, 50_000))
    params = tmp_path / "params.yaml"
    params.write_text(OmegaConf.to_yaml(compose(ROOT / "conf", ["data=imagefolder", f"data.path={folder}"])))
    capsys.readouterr()
    code = main(["download", "--params", str(params), "--out", str(tmp_path / "raw")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err
    assert err.startswith("reprovision download: error: imagefolder: train/b/bomb.png is 50,000x50,000 pixels")
    assert not (tmp_path / "raw").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "params.yaml"]
