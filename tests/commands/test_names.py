"""Names from config and revisions from arguments never become paths or options: `sweep` writes
only under conf/experiment/, `check --rev` hands git a revision, never an option."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from reprovision.cli import main
from reprovision.config import compose

ROOT = Path(__file__).resolve().parents[2]


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A project with committed metrics, as `check --rev` reads them."""
    project = tmp_path / "project"
    (project / "metrics").mkdir(parents=True)
    (project / "metrics" / "eval.json").write_text(
        json.dumps({"test/acc": 0.9, "test/f1_macro": 0.9, "test/loss": 0.3})
    )
    (project / "metrics" / "train.json").write_text(json.dumps({"val/acc": 0.9}))
    (project / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    git(project, "init", "-q")
    git(project, "add", ".")
    git(project, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "metrics")
    monkeypatch.chdir(project)
    return project


def test_check_against_a_revision_still_works(repo, capsys):
    assert main(["check", "--rev", "HEAD"]) == 0, capsys.readouterr().err


def test_a_revision_that_is_an_option_is_refused_and_git_writes_nothing(repo, tmp_path, capsys):
    target = tmp_path / "written-by-git"
    code = main(["check", f"--rev=--output={target}"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert (
        err
        == f"reprovision check: error: --rev '--output={target}' names no commit of this repository; pass a commit, branch or tag"
    )
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]


def test_a_search_name_that_climbs_out_of_conf_experiment_is_refused(tmp_path, capsys):
    params = tmp_path / "project" / "params.yaml"
    params.parent.mkdir()
    params.write_text(OmegaConf.to_yaml(compose(ROOT / "conf", ["search.name=../../../escape"])))
    code = main(["sweep", "--params", str(params), "--conf", str(tmp_path / "project" / "conf")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == (
        "reprovision sweep: error: search.name='../../../escape' is not a name: use letters, digits, _ and - only"
    )
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["params.yaml", "project"]


@pytest.mark.parametrize("name", ["x'y", "a/b", "../x"])
def test_a_registered_model_name_is_a_name(tmp_path, capsys, name):
    # It goes into models:/NAME@champion URIs and MLflow's search filter (name='NAME').
    params = OmegaConf.to_container(compose(ROOT / "conf", []))
    params["tracking"]["registered_model"] = name
    (tmp_path / "params.yaml").write_text(OmegaConf.to_yaml(params))
    code = main(["check", "--params", str(tmp_path / "params.yaml")])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"reprovision check: error: tracking.registered_model={name!r} is not a name: use letters, digits, _ and - only"
    )
