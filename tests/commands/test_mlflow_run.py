"""mlflow-run: from a DVC experiment name or a git revision to the MLflow run's UI address."""

from __future__ import annotations

import subprocess
import time

import pytest
from mlflow.tracking import MlflowClient

from reprovision.cli import main


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A git checkout with one commit, its params.yaml naming a SQLite store with three runs."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run([*git, "init", "-q"], check=True)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "params.yaml").write_text(_params(uri))
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    client = MlflowClient(uri)
    experiment = client.create_experiment("reprovision", artifact_location=str(tmp_path / "mlruns"))
    runs = {}
    for name, exp, sha in (("a", "bushy-lamp", commit), ("b", "other-exp", "0" * 40), ("c", "later-lamp", commit)):
        tags = {"mlflow.runName": name, "dvc_exp_name": exp, "git_commit": sha}
        runs[name] = client.create_run(experiment, tags=tags).info.run_id
        time.sleep(0.01)  # distinct start times: newest first is an order
    return experiment, runs


def _params(uri: str) -> str:
    from omegaconf import OmegaConf
    from tests.project import ROOT

    from reprovision.config import compose

    return OmegaConf.to_yaml(compose(ROOT / "conf", [f"tracking.uri={uri}"]))


def addresses(capsys, *args: str) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(["mlflow-run", *args])
    return code, [line.split("\t")[-1] for line in capsys.readouterr().out.splitlines()]


def test_an_experiment_name_gives_its_runs_address_in_the_ui(store, capsys):
    experiment, runs = store
    code, urls = addresses(capsys, "bushy-lamp")
    assert code == 0 and urls == [f"http://127.0.0.1:5000/#/experiments/{experiment}/runs/{runs['a']}"]
    _, urls = addresses(capsys, "other-exp", "--ui", "https://mlflow.example/")
    assert urls == [f"https://mlflow.example/#/experiments/{experiment}/runs/{runs['b']}"]


def test_a_git_revision_gives_the_runs_started_from_that_commit_newest_first(store, capsys):
    _, runs = store
    code, urls = addresses(capsys, "HEAD")
    assert code == 0 and [u.rsplit("/", 1)[-1] for u in urls] == [runs["c"], runs["a"]]


@pytest.mark.parametrize("target", ["no-such-exp", "x' OR tags.dvc_exp_name != '"])
def test_an_unknown_or_malformed_name_is_one_line_and_exit_2(store, capsys, target):
    capsys.readouterr()
    assert main(["mlflow-run", target]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "reprovision mlflow-run: error:" in err
