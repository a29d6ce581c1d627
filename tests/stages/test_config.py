"""The config stage: a config that cannot run, or that conf/ no longer composes to, stops the
pipeline before any stage's outputs are touched."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from reprovision.cli import main
from reprovision.config import compose

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """conf/ and the params.yaml it composes to, as `make params` leaves them."""
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.delenv("REPROVISION_REPRODUCES", raising=False)
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    (tmp_path / "params.yaml").write_text(OmegaConf.to_yaml(compose(tmp_path / "conf")))
    return tmp_path


def check(project: Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["config", "--params", str(project / "params.yaml"), "--conf", str(project / "conf"),
                 "--out", str(project / "data" / "config.checked")])  # fmt: skip
    return code, capsys.readouterr().err.strip()


def test_a_config_composed_from_conf_passes_and_writes_the_same_bytes_every_time(project, capsys):
    assert check(project, capsys) == (0, "")
    first = (project / "data" / "config.checked").read_bytes()
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("lr: 0.001", "lr: 0.002"))
    (project / "conf" / "optim" / "adam.yaml").write_text(
        (project / "conf" / "optim" / "adam.yaml").read_text().replace("lr: 0.001", "lr: 0.002")
    )
    assert check(project, capsys) == (0, "")
    assert (project / "data" / "config.checked").read_bytes() == first  # downstream stages see no change


def test_an_edit_of_conf_that_params_yaml_lacks_stops_with_one_line_naming_the_fix(project, capsys):
    cnn = project / "conf" / "model" / "cnn.yaml"
    cnn.write_text(cnn.read_text().replace("hidden: 64", "hidden: 128"))
    code, err = check(project, capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "model.hidden: 128 in" in err and "64 in" in err
    assert "make params" in err and "dvc exp run" in err
    assert not (project / "data" / "config.checked").exists()


def test_under_dvc_exp_run_params_yaml_is_dvcs_composition_and_only_validated(project, capsys, monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "exp-1")  # DVC composed params.yaml from conf/ and -S overrides
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("lr: 0.001", "lr: 0.05"))
    assert check(project, capsys) == (0, "")
    params.write_text(params.read_text().replace("max_epochs: 30", "max_epochs: -1"))
    code, err = check(project, capsys)
    assert code == 2 and "trainer.max_epochs=-1 is out of range" in err


def test_overrides_given_to_reprovision_params_are_no_drift(project, capsys):
    params = str(project / "params.yaml")
    assert main(["params", "--conf", str(project / "conf"), "--out", params, "trainer.checkpoint_every_s=0"]) == 0
    assert check(project, capsys) == (0, "")
    cnn = project / "conf" / "model" / "cnn.yaml"
    cnn.write_text(cnn.read_text().replace("hidden: 64", "hidden: 128"))  # an edit not composed yet
    code, err = check(project, capsys)
    assert code == 2 and "model.hidden" in err and "checkpoint_every_s" not in err


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.accelerator=gpu", "trainer.accelerator=gpu but no GPU"),
        ("tracking.uri=http://127.0.0.1:{port}", "MLflow tracking server http://127.0.0.1:{port} unreachable"),
        ("tracking.uri=postgresql+psycopg://mlflow@127.0.0.1:{port}/mlflow", "tracking database postgresql"),
        ("model.hidden=1000000000", "the model has 139,000,004,858 parameters"),
        ("model=mlp model.hidden=[100000,100000]", "make model.hidden or model.channels smaller"),
    ],
)
def test_what_train_would_refuse_on_this_machine_is_refused_by_the_config_stage(
    project, capsys, monkeypatch, override, message
):
    """DVC deletes train's outputs before train runs: a refusal there would cost the last run's model
    and metrics. The config stage runs first and refuses the same, in one line."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    port = closed_port()
    params = str(project / "params.yaml")
    overrides = override.format(port=port).split(" ")
    assert main(["params", "--conf", str(project / "conf"), "--out", params, *overrides]) == 0
    code, err = check(project, capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert message.format(port=port) in err
    assert not (project / "data" / "config.checked").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.devices=2", "trainer.devices=2 x trainer.num_nodes=1 processes need trainer.strategy=ddp"),
        ("seed=-1", "seed=-1 is out of range"),
    ],
)
def test_a_process_layout_or_seed_no_stage_can_run_is_refused_at_composition(project, capsys, override, message):
    code = main(["params", "--conf", str(project / "conf"), "--out", str(project / "params.yaml"), override])
    assert code == 2 and message in capsys.readouterr().err
