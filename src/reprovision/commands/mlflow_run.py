"""mlflow-run: from a row of `dvc exp show` to its MLflow run: the run's address in the MLflow UI.

Every run the train stage starts carries the DVC experiment's name (`dvc_exp_name`, also the
run's name) and the git commit it ran from (`git_commit`): an experiment name finds its runs by
the first, a git revision (a commit, branch or tag) the runs started from that commit by the
second. With no argument, the run of the workspace's last training (checkpoints/run.json).
Nothing random goes into git-tracked files for this: the tags are in MLflow.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import webbrowser
from pathlib import Path

from reprovision.config import load_config
from reprovision.errors import BadInput
from reprovision.tracking import tracking_uri
from reprovision.urls import is_http, masked

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # DVC's experiment names; nothing a filter could parse
LOCAL_UI = "http://127.0.0.1:5000"  # `make ui` (mlflow ui) for a local store


def ui_base(uri: str, ui: str | None) -> str:
    """Where the MLflow UI of store `uri` is served: a server's own address, else `make ui`'s."""
    if ui:
        return ui.rstrip("/")
    return masked(uri).rstrip("/") if is_http(uri) else LOCAL_UI


def commit_of(rev: str) -> str | None:
    """The full commit a git revision names, or None when it names none."""
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def find_runs(client, target: str) -> list:
    """Runs of experiment name `target`, else of the git revision it names; newest first."""
    if not NAME.fullmatch(target):
        raise BadInput(f"{target!r} is not an experiment name or git revision (letters, digits, . _ - only)")
    experiments = [e.experiment_id for e in client.search_experiments()]
    filters = [f"tags.dvc_exp_name = '{target}'"]
    if commit := commit_of(target):
        filters.append(f"tags.git_commit = '{commit}'")
    for query in filters:
        runs = client.search_runs(experiments, query, order_by=["attributes.start_time DESC"])
        if runs:
            return runs
    raise BadInput(f"no MLflow run is tagged with experiment or commit {target!r} in this store; check the name")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="?", help="a DVC experiment name or git revision; default: the workspace's")
    parser.add_argument("--params", default="params.yaml", type=Path, help="the config naming the store")
    parser.add_argument("--run-file", default="checkpoints/run.json", type=Path, help="the workspace's run")
    parser.add_argument("--ui", help=f"the MLflow UI's address (default: a server's own, else {LOCAL_UI})")
    parser.add_argument("--open", action="store_true", help="open the newest run's page in a browser")


def run(args: argparse.Namespace) -> None:
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(load_config(args.params))
    client = MlflowClient(uri)
    if args.target is None:
        if not args.run_file.is_file():
            raise BadInput(f"{args.run_file} not found: train first (dvc repro), or name an experiment")
        runs = [client.get_run(json.loads(args.run_file.read_text())["run_id"])]
    else:
        runs = find_runs(client, args.target)
    base = ui_base(uri, args.ui)
    for r in runs:
        url = f"{base}/#/experiments/{r.info.experiment_id}/runs/{r.info.run_id}"
        print(f"{r.info.run_name}\t{r.info.status}\t{url}")
    if args.open:
        webbrowser.open(f"{base}/#/experiments/{runs[0].info.experiment_id}/runs/{runs[0].info.run_id}")
