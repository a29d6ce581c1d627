"""reproduce: restore a past MLflow run's resolved config, rerun the pipeline, compare metrics.

The run's `config/params.yaml` artifact becomes params.yaml, `dvc repro --force --no-run-cache`
reruns every stage (retraining rather than restoring cached outputs; without --force DVC would
keep committed metrics that already match, which proves nothing), and the new test metrics must
equal the recorded ones exactly. For an exact reproduction check out the run's
git commit first; a differing commit or package version is reported before the rerun.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from reprovision import tracking
from reprovision.config import Tolerance, load_config
from reprovision.errors import BadInput, StageFailed
from reprovision.files import atomic_file
from reprovision.regression import compare, read_metrics, text_table
from reprovision.urls import masked


def fetch_run_config(run_id: str, uri: str) -> tuple[str, dict[str, str], dict[str, float]]:
    """The run's resolved config text, its tags and its metrics."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.tracking.MlflowClient(uri)
    try:
        run = client.get_run(run_id)
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="config/params.yaml", dst_path=tmp, tracking_uri=uri
            )
            text = Path(path).read_text()
    except (MlflowException, OSError) as e:
        first = str(e).splitlines()[0]
        raise BadInput(f"run {run_id} or its config/params.yaml not found in {masked(uri)}: {first}") from None
    return text, run.data.tags, run.data.metrics


def differences(tags: dict[str, str]) -> list[str]:
    """What differs between the run's recorded environment and this one."""
    now = tracking.run_tags()
    notes = []
    if tags.get("git_commit") and tags.get("git_commit") != now.get("git_commit"):
        notes.append(
            f"code: the run used commit {tags['git_commit'][:12]}, this is "
            f"{now.get('git_commit', 'not a git checkout')[:12]} (git checkout {tags['git_commit'][:12]})"
        )
    notes += [
        f"{key.removesuffix('_version')}: run {tags[key]}, here {value}"
        for key, value in now.items()
        if key.endswith("_version") and key in tags and tags[key] != value
    ]
    return notes


def reproduce(run_id: str, uri: str, params_path: Path, metrics_path: Path) -> list:
    text, tags, recorded = fetch_run_config(run_id, uri)
    for note in differences(tags):
        print(f"reproduce: warning: {note}", file=sys.stderr)
    with atomic_file(params_path) as tmp:
        tmp.write_text(text)
        load_config(tmp)  # refuse a config this code cannot run, before touching params.yaml
    dvc = shutil.which("dvc", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env = {**os.environ, tracking.REPRODUCES_ENV: run_id}
    if subprocess.run([dvc or "dvc", "repro", "--force", "--no-run-cache"], env=env).returncode != 0:
        raise StageFailed("dvc repro failed; see its output above")
    current = read_metrics([metrics_path])
    exact = {k: Tolerance(direction="higher", absolute=0.0) for k in current if k in recorded}
    return compare(recorded, current, exact)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", help="MLflow run id (checkpoints/run.json, the MLflow UI)")
    parser.add_argument("--params", default="params.yaml", type=Path, help="config file to restore into")
    parser.add_argument("--metrics", default="metrics/eval.json", type=Path, help="test metrics to compare")
    parser.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI, tracking.uri, sqlite:///mlflow.db")


def run(args: argparse.Namespace) -> None:
    uri = args.tracking_uri or tracking.tracking_uri(load_config(args.params))
    rows = reproduce(args.run_id, uri, args.params, args.metrics)
    print(f"reproduce: {args.run_id} recorded vs rerun:\n{text_table(rows)}")
    changed = [r.metric for r in rows if r.verdict != "same"]
    if changed:
        raise StageFailed(f"{', '.join(changed)} differ from run {args.run_id}")
    print(f"reproduce: identical metrics ({len(rows)} compared)")
