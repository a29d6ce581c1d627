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
