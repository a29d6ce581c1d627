"""`reprovision predict` reads what it is given within bounds: no input larger than its limit, no
pipe or device, no net larger than its weights, no wait on a tracking server that does not answer."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

import pytest
import torch
from tests.commands.test_predict_faults import model, png, predict  # noqa: F401 (model: a fixture)
from tests.stages.test_config import closed_port

from reprovision.commands.predict import MAX_INPUT_MIB
from reprovision.data.raw import RESERVED_WORDS
from reprovision.models.module import Model

KINDS = {  # the option that passes a file of each kind, and a model that takes it
    "image": ([], "cnn", {"kind": "image", "shape": [1, 8, 8], "mean": [0.0], "std": [1.0]}),
    "text": (["--text-file"], "mlp", {"kind": "text", "vocabulary": [*RESERVED_WORDS, "good"], "max_length": None}),
    "table": (["--table"], "mlp", {"kind": "table", "features": ["a", "b"], "mean": [0.0] * 2, "std": [1.0] * 2}),
}


def model_for(kind: str, tmp_path) -> tuple[list[str], str]:
    """The option for `kind`'s files and the path of an (untrained) checkpoint that takes them."""
    option, name, inputs = KINDS[kind]
    net = {"name": name, "hidden": [4] if name == "mlp" else 8, "dropout": 0.0, "init": "default"}
    if name == "cnn":
        net["channels"] = [4, 8]
    module = Model(net, {"name": "adam"}, "classification", ["no", "yes"], inputs)
    path = tmp_path / f"{kind}.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return option, str(path)


@pytest.mark.parametrize("kind", KINDS)
def test_an_input_over_the_limit_is_refused_before_it_is_read(tmp_path, capsys, kind):
    option, checkpoint = model_for(kind, tmp_path)
    big = tmp_path / "big"
    with big.open("wb") as f:
        f.truncate((MAX_INPUT_MIB << 20) + 1)  # sparse: nothing written, every byte would be read
    code, err = predict(capsys, *option, str(big), "--model", checkpoint)
    assert code == 2 and "\n" not in err
    assert f"{big}: {(MAX_INPUT_MIB << 20) + 1:,} bytes, over the {MAX_INPUT_MIB} MiB predict reads" in err


@pytest.mark.parametrize("kind", KINDS)
def test_a_device_is_refused_instead_of_read_forever(tmp_path, capsys, kind):
    option, checkpoint = model_for(kind, tmp_path)
    code, err = predict(capsys, *option, "/dev/zero", "--model", checkpoint)
    assert code == 2 and "/dev/zero: not a regular file (a pipe, socket or device)" in err


def test_a_named_pipe_is_refused_instead_of_waited_on(tmp_path):
    option, checkpoint = model_for("table", tmp_path)
    fifo = tmp_path / "rows.csv"
    os.mkfifo(fifo)
    cmd = [sys.executable, "-m", "reprovision", "predict", *option, str(fifo), "--model", checkpoint]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)  # opening it would block forever
    assert proc.returncode == 2 and f"{fifo}: not a regular file" in proc.stderr.strip().splitlines()[-1]


def test_a_checkpoint_declaring_a_net_larger_than_its_weights_allocates_nothing_of_that_size(model, tmp_path):  # noqa: F811
    """Its settings say 1,000,000,000 hidden units (4 GB of weights) beside a few kilobytes of them:
    refused by the weights' shapes, under a 2 GiB memory limit that allocating the net would break."""
    ckpt = torch.load(model, weights_only=True)
    ckpt["hyper_parameters"]["net"]["hidden"] = 1_000_000_000
    torch.save(ckpt, model)
    assert model.stat().st_size < 100_000
    (tmp_path / "x.png").write_bytes(png())

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (2 << 30, 2 << 30))

    cmd = [sys.executable, "-m", "reprovision", "predict", str(tmp_path / "x.png"), "--model", str(model)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, preexec_fn=limit_memory)
    line = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and f"{model}: does not fit this pipeline's cnn (size mismatch for net." in line


def test_a_model_uri_on_a_server_that_does_not_answer_fails_in_seconds(capsys):
    port = closed_port()
    start = time.monotonic()
    code, err = predict(capsys, "x.png", "--model", "runs:/0123/model", "--tracking-uri", f"http://127.0.0.1:{port}")
    assert code == 2 and time.monotonic() - start < 30
    assert f"MLflow tracking server http://127.0.0.1:{port} unreachable" in err and "\n" not in err
