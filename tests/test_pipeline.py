"""The real pipeline: `dvc repro` / `dvc exp run` in a fresh copy of the project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STAGES = ("download", "split", "normalise", "train", "evaluate", "report")


def project_copy(root: Path, dest: Path) -> Path:
    """The project as a fresh clone would have it (tracked and unignored files), as a git repo."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, files):
        if (root / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, dest / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "fresh clone"], cwd=dest, check=True)
    return dest


def dvc(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"  # stage commands call `python`
    proc = subprocess.run([str(BIN / "dvc"), *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def ran(output: str) -> list[str]:
    return [s for s in STAGES if f"Running stage '{s}'" in output]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> tuple[Path, str]:
    """One full `dvc repro` from clean, shared by the tests below."""
    work = project_copy(ROOT, tmp_path_factory.mktemp("project"))
    return work, dvc(work, "repro")


def test_repro_runs_all_six_stages_and_meets_the_accuracy_bar(pipeline):
    work, output = pipeline
    assert ran(output) == list(STAGES)
    metrics = json.loads((work / "metrics" / "eval.json").read_text())
    assert metrics["test/acc"] >= 0.97
    assert (work / "reports" / "index.html").is_file()
    assert (work / "models" / "model.ckpt").is_file()


def test_second_repro_is_up_to_date(pipeline):
    work, _ = pipeline
    start = time.monotonic()
    output = dvc(work, "repro")
    assert time.monotonic() - start < 15
    assert ran(output) == []
    assert "up to date" in output


def test_mlflow_run_has_params_histories_confusion_matrix_and_checkpoint(pipeline):
    work, _ = pipeline
    run_info = json.loads((work / "models" / "run.json").read_text())
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    run = client.get_run(run_info["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["optim.lr"] == "0.001"
    assert run.data.params["model.name"] == "cnn"
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, capture_output=True, text=True).stdout
    assert run.data.tags["git_commit"] == commit.strip()
    epochs = json.loads((work / "metrics" / "train.json").read_text())["epochs"]
    for key in ("train/loss", "train/acc", "val/loss", "val/acc", "train/lr"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == list(range(1, epochs + 1)), key
    eval_metrics = json.loads((work / "metrics" / "eval.json").read_text())
    assert run.data.metrics["test/acc"] == eval_metrics["test/acc"]

    def artifacts(path=None):
        for a in client.list_artifacts(run.info.run_id, path):
            yield from artifacts(a.path) if a.is_dir else [a.path]

    names = set(artifacts())
    assert {
        "evaluation/confusion_matrix.png",
        "evaluation/confusion_matrix.json",
        "best/best.ckpt",
        "report/index.html",
    } <= names


def test_dvc_metrics_plots_and_dag_work(pipeline):
    work, _ = pipeline
    metrics = json.loads(dvc(work, "metrics", "show", "--json"))
    assert json.dumps(metrics).count("test/acc") >= 1
    dag = dvc(work, "dag")
    assert all(s in dag for s in STAGES)
    dvc(work, "plots", "show", "-o", "dvc_plots")
    assert (work / "dvc_plots" / "index.html").is_file()


def test_two_runs_from_clean_give_byte_identical_metrics(pipeline, tmp_path):
    work, _ = pipeline
    other = project_copy(ROOT, tmp_path)
    dvc(other, "repro")
    assert (other / "metrics" / "eval.json").read_bytes() == (work / "metrics" / "eval.json").read_bytes()


def test_exp_run_with_new_lr_reruns_only_downstream_stages(pipeline):
    work, _ = pipeline
    subprocess.run(["git", "add", "-A"], cwd=work, check=True)  # commit the first run, as a user would
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "run"],
        cwd=work,
        check=True,
    )
    output = dvc(work, "exp", "run", "-S", "optim.lr=0.01")
    assert ran(output) == ["train", "evaluate", "report"]
    assert "lr: 0.01" in (work / "params.yaml").read_text()
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    assert len(client.search_runs([client.get_experiment_by_name("reprovision").experiment_id])) == 2
