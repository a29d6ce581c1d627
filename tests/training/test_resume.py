"""Faults during training: killed runs resume to the same result; NaN stops; checkpoints survive."""

from __future__ import annotations

import errno
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from tests.data.formats import data_config

from reprovision.config import compose
from reprovision.data.normalise import normalise
from reprovision.data.sources import download
from reprovision.data.splitting import split
from reprovision.training.checkpoints import AtomicCheckpointIO

ROOT = Path(__file__).resolve().parents[2]
CALLBACK_STATE_KEYS = (
    "EpochRecorder",
    "ModelCheckpoint{'monitor': 'val/acc', 'mode': 'max', 'every_n_train_steps': 0, 'every_n_epochs': 1, "
    "'train_time_interval': None}",
    "LastCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 0, 'every_n_epochs': 1, "
    "'train_time_interval': None}",
)  # early stopping keeps no state of its own: it decides from EpochRecorder's rows


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """The digits pipeline up to normalise, as the train stage finds it."""
    work = tmp_path_factory.mktemp("digits")
    download(data_config(), work / "raw")
    split(data_config(), work / "raw", work / "split", seed=42)
    normalise(work / "split", work / "normalised")
    return work


def train_cmd(digits: Path, where: Path, *overrides: str) -> list[str]:
    where.mkdir(parents=True, exist_ok=True)
    cfg = compose(
        ROOT / "conf",
        [
            "trainer.max_epochs=12",
            "trainer.checkpoint_every_s=0",  # last.ckpt every epoch: the kills land mid-run
            "trainer.progress_bar=false",
            f"tracking.uri=sqlite:///{digits / 'mlflow.db'}",
            *overrides,
        ],
    )
    (where / "params.yaml").write_text(OmegaConf.to_yaml(cfg))
    return [
        sys.executable,
        "-m",
        "reprovision",
        "train",
        "--params",
        str(where / "params.yaml"),
        "--data",
        str(digits / "normalised"),
        "--summary",
        str(digits / "split" / "summary.json"),
        "--checkpoints",
        str(where / "checkpoints"),
        "--out",
        str(where / "models"),
        "--metrics",
        str(where / "train.json"),
        "--curves",
        str(where / "curves.csv"),
    ]


def in_process(cmd: list[str], capsys) -> tuple[int, str, str]:
    """`cmd` (a train_cmd) run by the same CLI in this process: no start-up, for runs not killed."""
    from reprovision.cli import main

    capsys.readouterr()
    code = main(cmd[3:])  # after `python -m reprovision`
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def uninterrupted(digits) -> Path:
    where = digits / "uninterrupted"
    subprocess.run(train_cmd(digits, where), check=True, capture_output=True)
    return where


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["TERM", "INT", "KILL"])
def test_killed_training_resumes_to_the_same_result(digits, uninterrupted, sig, capsys):
    where = digits / f"killed-{sig.name}"
    cmd = train_cmd(digits, where)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = where / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode != 0, "an interrupted stage must not look done to DVC"
    assert not (where / "train.json").exists() and not (where / "models").exists()
    assert last.exists()

    code, out, err = in_process(cmd, capsys)  # the rerun, in this process: the kill was real
    assert code == 0, err
    assert "resuming from" in out
    assert (where / "curves.csv").read_text() == (uninterrupted / "curves.csv").read_text()
    assert (where / "train.json").read_text() == (uninterrupted / "train.json").read_text()

    # One MLflow run, every epoch logged exactly once.
    run_id = json.loads((where / "checkpoints" / "run.json").read_text())["run_id"]
    client = MlflowClient(f"sqlite:///{digits / 'mlflow.db'}")
    for key in ("val/acc", "train/loss"):
        assert [m.step for m in client.get_metric_history(run_id, key)] == list(range(1, 13)), key
    assert client.get_run(run_id).info.status == "FINISHED"


def test_a_checkpoint_of_another_config_is_not_resumed(digits, uninterrupted, capsys):
    where = digits / "other-config"
    assert in_process(train_cmd(digits, where, "trainer.max_epochs=2"), capsys)[0] == 0
    # Leave a stale resume state behind, as a killed run of another config would.
    (where / "checkpoints" / "resume.json").write_text(json.dumps({"fingerprint": "other", "run": {}}))
    code, out, _ = in_process(train_cmd(digits, where, "trainer.max_epochs=2", "optim.lr=0.002"), capsys)
    assert code == 0 and "resuming" not in out


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(digits, capsys):
    where = digits / "diverges"
    code, _, err = in_process(train_cmd(digits, where, "optim=sgd", "optim.lr=1e12"), capsys)
    assert code == 1
    message = err.strip().splitlines()[-1]
    assert message.startswith("reprovision train: failed: training loss is nan at step") or "inf" in message
    assert "lower optim.lr" in message
    assert not (where / "models").exists()
    # What a rerun would resume from holds no diverged model: only checkpoints from before the bad
    # step, with finite weights, and the message says whether there is one.
    bad_step = int(re.search(r"at step (\d+)", message)[1])
    kept = sorted((where / "checkpoints").glob("*.ckpt"))
    for path in kept:
        ckpt = torch.load(path, weights_only=True)
        assert ckpt["global_step"] < bad_step, path.name
        assert all(torch.isfinite(w).all() for w in ckpt["state_dict"].values()), path.name
    last_kept = (where / "checkpoints" / "last.ckpt") in kept
    assert message.endswith("the last good checkpoint is kept" if last_kept else "no checkpoint had been written yet")
    run_id = json.loads((where / "checkpoints" / "resume.json").read_text())["run"]["run_id"]
    assert MlflowClient(f"sqlite:///{digits / 'mlflow.db'}").get_run(run_id).info.status == "FAILED"


def test_gpu_requested_without_a_gpu_is_a_config_error_and_apple_mps_counts_as_one(digits, capsys, monkeypatch):
    """Lightning's gpu is CUDA or Apple's MPS: the train stage refuses it only where there is neither."""
    import platform

    from reprovision.config import validate
    from reprovision.training.preflight import check_devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    code, _, err = in_process(train_cmd(digits, digits / "gpu", "trainer.accelerator=gpu"), capsys)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("reprovision train: error: trainer.accelerator=gpu but no GPU")
    assert not (digits / "gpu" / "checkpoints").exists()
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(platform, "processor", lambda: "arm")  # Apple silicon
    assert check_devices(validate(compose(ROOT / "conf", ["trainer.accelerator=gpu"]))).type == "mps"


def test_unreachable_tracking_server_fails_before_training(digits, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    where = digits / "no-server"
    start = time.monotonic()
    code, _, err = in_process(train_cmd(digits, where, f"tracking.uri=http://alice@127.0.0.1:{port}"), capsys)
    assert code == 2 and time.monotonic() - start < 30
    line = err.strip().splitlines()[-1]
    assert "MLflow tracking server http://***@127.0.0.1" in line and "unreachable" in line and "alice" not in line
    assert not (where / "checkpoints" / "last.ckpt").exists()


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)

    def disk_full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


@pytest.mark.slow
def test_two_trainings_share_one_mlflow_store_safely(digits):
    cmds = [train_cmd(digits, digits / f"concurrent-{i}", "trainer.max_epochs=6", f"seed={i}") for i in (1, 2)]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    client = MlflowClient(f"sqlite:///{digits / 'mlflow.db'}")
    for i in (1, 2):
        run_id = json.loads((digits / f"concurrent-{i}" / "checkpoints" / "run.json").read_text())["run_id"]
        run = client.get_run(run_id)
        assert run.data.params["seed"] == str(i) and run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run_id, "val/acc")] == [1, 2, 3, 4, 5, 6]


def test_an_early_stopped_run_interrupted_while_logging_its_model_resumes_without_training(digits, capsys, monkeypatch):
    # Ctrl-C after early stopping wrote the final last.ckpt, while the model goes to MLflow: the
    # rerun must finish that run as it was, not train on past the stop.
    from reprovision import tracking

    where = digits / "early-stopped"
    cmd = train_cmd(digits, where, "trainer.max_epochs=40", "trainer.early_stopping=1")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tracking, "log_model", interrupt)
    assert in_process(cmd, capsys)[0] == 130
    monkeypatch.undo()
    run_id = json.loads((where / "checkpoints" / "resume.json").read_text())["run"]["run_id"]
    client = MlflowClient(f"sqlite:///{digits / 'mlflow.db'}")
    stopped = len(client.get_metric_history(run_id, "val/acc"))
    assert 2 <= stopped < 40  # it did stop early
    assert client.get_run(run_id).info.status == "KILLED"  # interrupted, not failed: a rerun resumes it
    # Lightning files each callback's state under its class name and settings: these are the keys
    # that checkpoints written by earlier versions carry, so they must resume with this code.
    callbacks = torch.load(where / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]
    assert set(callbacks) == set(CALLBACK_STATE_KEYS)

    code, out, err = in_process(cmd, capsys)
    assert code == 0, err
    assert "resuming from" in out
    assert len((where / "curves.csv").read_text().splitlines()) == 1 + stopped
    assert [m.step for m in client.get_metric_history(run_id, "val/acc")] == list(range(1, stopped + 1))
    assert json.loads((where / "train.json").read_text())["epochs"] == stopped
    assert client.get_run(run_id).info.status == "FINISHED"


MID_EPOCH = ("data.batch_size=8", "trainer.max_epochs=3", "data.flip=true")  # 180 batches an epoch, flips drawn


@pytest.fixture(scope="module")
def uninterrupted_small_batches(digits) -> Path:
    where = digits / "uninterrupted-small-batches"
    subprocess.run(train_cmd(digits, where, *MID_EPOCH), check=True, capture_output=True)
    return where


@pytest.mark.slow
@pytest.mark.parametrize("loader", ["device", "dataloader"])
def test_a_kill_mid_epoch_resumes_to_the_same_bytes(digits, uninterrupted_small_batches, loader, capsys):
    """last.ckpt written after every batch (checkpoint_every_s tiny): a SIGKILL lands mid-epoch,
    and the rerun takes the epoch up at the next batch, with the same order, flips, dropout and
    epoch metrics. Both paths draw the same order, so both match one uninterrupted run on the
    device without mid-epoch saves."""
    where = digits / f"killed-mid-epoch-{loader}"
    cmd = train_cmd(digits, where, *MID_EPOCH, "trainer.checkpoint_every_s=0.000001", f"data.loader={loader}")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = where / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    kept = torch.load(last, weights_only=True)
    assert "epoch_so_far" in kept and kept["epoch"] == 0  # killed within the first epoch, mid-way

    code, out, err = in_process(cmd, capsys)
    assert code == 0, err
    assert "resuming from" in out
    for name in ("curves.csv", "train.json"):
        assert (where / name).read_text() == (uninterrupted_small_batches / name).read_text(), name
    model, reference = (w / "models" / "model.ckpt" for w in (where, uninterrupted_small_batches))
    assert (
        torch.load(model, weights_only=True)["state_dict"].keys()
        == torch.load(reference, weights_only=True)["state_dict"].keys()
    )
    for key, value in torch.load(reference, weights_only=True)["state_dict"].items():
        assert torch.equal(torch.load(model, weights_only=True)["state_dict"][key], value), key
    run_id = json.loads((where / "checkpoints" / "run.json").read_text())["run_id"]
    history = MlflowClient(f"sqlite:///{digits / 'mlflow.db'}").get_metric_history(run_id, "train/loss")
    assert [m.step for m in history] == [1, 2, 3]  # every epoch logged once
