"""The MLflow run of a pipeline run: started with the config, tags and dataset, reopened by later stages."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil

from reprovision.config import Config, flatten
from reprovision.config.consistency import REPRODUCES_ENV
from reprovision.tracking.store import (
    artifact_location,
    check_reachable,
    client_uri,
    store_lock,
    tracking_uri,
    with_credentials,
)
from reprovision.urls import masked, without_credentials


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


VERSIONED = ("torch", "pytorch-lightning", "mlflow", "dvc", "hydra-core", "numpy")
PIPELINE_WRITES = (":!dvc.lock", ":!metrics")  # files the pipeline itself rewrites during a run


def run_tags(data_dir: str | None = None) -> dict[str, str]:
    """Where the run came from: git commit and whether code/config differ from it, the DVC
    experiment, the data's hash in dvc.lock, and the versions that shape the numbers."""
    tags = {"python_version": platform.python_version()}
    tags.update({f"{pkg}_version": _version(pkg) for pkg in VERSIONED})
    commit = _git("rev-parse", "HEAD")
    if commit:
        tags["git_commit"] = tags["mlflow.source.git.commit"] = commit
        dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".", *PIPELINE_WRITES)
        tags["git_dirty"] = str(bool(dirty))
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    if os.environ.get(REPRODUCES_ENV):
        tags["reproduces"] = os.environ[REPRODUCES_ENV]
    if data_dir and (md5 := dvc_lock_md5(data_dir)):
        tags["data_md5"] = md5
    return tags


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:  # a training machine without DVC (a GPU node)
        return "not installed"


def system_tags(tags: dict[str, str]) -> dict[str, str]:
    """`tags` with MLflow's own system tags, which its UI shows (Source, User): those MLflow's
    context providers give any run it starts (mlflow.user, mlflow.source.type), the command as
    the source's name; `tags` win (mlflow.source.git.commit, from run_tags)."""
    from mlflow.tracking.context.registry import resolve_tags

    command = " ".join(["reprovision", *sys.argv[1:2]])  # reprovision train, reprovision sweep
    return resolve_tags({"mlflow.source.name": command, "mlflow.source.type": "LOCAL", **tags})


def dvc_lock_md5(out_path: str, lock: Path = Path("dvc.lock")) -> str | None:
    """The hash dvc.lock records for a stage output (DVC writes it as each stage finishes)."""
    import yaml

    if not lock.is_file():
        return None
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    for stage in stages.values():
        for out in stage.get("outs", []):
            if Path(out.get("path", "")) == Path(out_path):
                return out.get("md5")
    return None


URL_KEYS = ("data.mirror", "tracking.uri", "search.storage")  # config values that may hold user:password@
MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value; the full config is an artifact
MAX_BATCH_METRICS = 1000  # MLflow's limit on metrics in one log_batch
NOT_IN_METRIC_NAMES = re.compile(r"[^\w.\- :]")  # MLflow allows these (and `/`, which would nest a name)
MAX_NAME_PART = 200  # MLflow's names stop at 250 characters, prefix included


def metric_name_parts(names: list[str]) -> list[str]:
    """Names that are data (class folders such as `c++`, `dogs & cats`) as parts of MLflow metric
    names, one each, in order: a character MLflow refuses becomes `_`, a name of dots (a path
    step) underscores, a long name is cut, and a name that then equals another's gains its index."""
    parts = []
    for name in names:
        part = NOT_IN_METRIC_NAMES.sub("_", name)[:MAX_NAME_PART].strip() or "_"
        parts.append("_" * len(part) if set(part) == {"."} else part)
    taken = set()
    for i, part in enumerate(parts):
        while parts[i] in taken:
            parts[i] = f"{part}_{i}"
            part = parts[i]
        taken.add(parts[i])
    return parts


def run_params(cfg: Config) -> dict[str, object]:
    """Every resolved value under its dotted key, credentials masked (log_params cuts values to
    MLflow's limit; config/params.yaml keeps them whole)."""
    params = flatten(cfg)
    for key in URL_KEYS:
        if params.get(key):
            params[key] = masked(params[key])  # never a password in MLflow
    return params


def dataset_params(summary: dict) -> dict[str, object]:
    """The dataset's facts (name, task, classes or target, raw size, split sizes); counts per class
    go in the summary artifact."""
    params = {
        "dataset.name": summary["dataset"],
        "dataset.task": summary["task"],
        "dataset.kind": summary["kind"],
        "dataset.raw_bytes": summary["raw_bytes"],
        **{f"dataset.size.{split}": n for split, n in summary["sizes"].items()},
    }
    if summary["classes"]:
        params.update({"dataset.classes": ",".join(summary["classes"]), "dataset.num_classes": len(summary["classes"])})
    if summary["target"]:
        params["dataset.target"] = summary["target"]
    if "image_shape" in summary:
        params["dataset.image_shape"] = "x".join(map(str, summary["image_shape"]))
    if "features" in summary:
        params["dataset.features"] = ",".join(summary["features"])
    return params


def experiment_for(client, name: str, location: str | None) -> str:
    """The id of experiment `name`, made if there is none. Two runs starting at once on a fresh
    server (queue workers) both find none: the second one's create fails on the unique name, and
    the experiment the first made is the one it gets."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    return client.get_experiment_by_name(name).experiment_id


class PipelineRun:
    """The MLflow run of one pipeline run: train opens it, evaluate and report reopen it from
    `checkpoints/run.json`, a resumed train reopens it from its checkpoint directory."""

    def __init__(self, info: dict[str, str], configured: str | None = None) -> None:
        """`info` as recorded (its tracking URI without credentials); `configured`, this process's
        tracking URI, puts the credentials back when it names the same server."""
        from mlflow.tracking import MlflowClient

        self.info = info
        self.run_id = info["run_id"]
        self.uri = with_credentials(info["tracking_uri"], configured)  # kept in memory, never written
        self.client = MlflowClient(client_uri(self.uri))

    @classmethod
    def start(
        cls,
        cfg: Config,
        params_path: Path,
        data_dir: Path,
        summary_path: Path,
        name: str | None = None,
        parent_run_id: str | None = None,
    ) -> PipelineRun:
        """A new run carrying the resolved config (params + artifact), the dataset and the tags."""
        from mlflow.tracking import MlflowClient

        uri = tracking_uri(cfg)
        check_reachable(uri)
        with store_lock(uri):  # the first client creates the tables; so does the first run
            client = MlflowClient(client_uri(uri))
            experiment_id = experiment_for(client, cfg.tracking.experiment, artifact_location(uri))
        default_name = os.environ.get("DVC_EXP_NAME") or f"{cfg.data.name}-{cfg.model.name}-{cfg.optim.name}"
        tags = {"mlflow.runName": name or default_name, **run_tags(str(summary_path.parent))}  # the split's hash
        started = None
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id  # shown nested under the parent in the UI
        else:  # the run's clock starts with the stage's process, start-up included
            started = int(psutil.Process().create_time() * 1000)
        run_id = client.create_run(experiment_id, start_time=started, tags=system_tags(tags)).info.run_id
        # Recorded (run.json, resume.json) without credentials; reopening supplies them again.
        self = cls({"run_id": run_id, "experiment_id": experiment_id, "tracking_uri": without_credentials(uri)}, uri)
        self.log_params({**run_params(cfg), **dataset_params(json.loads(summary_path.read_text()))})
        # The config that ran, whole, as reproduce restores it; passwords in URLs masked.
        text = params_path.read_text()
        for url in (cfg.data.mirror, cfg.tracking.uri, cfg.search.storage):
            text = text.replace(url, masked(url)) if url else text
        client.log_text(run_id, text, "config/params.yaml")
        self.log_artifact(summary_path, "data")
        return self

    def log_params(self, params: dict[str, object]) -> None:
        """Params as strings cut to MLflow's limit, in MLflow's batches of 100."""
        from mlflow.entities import Param

        batch = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in params.items()]
        for i in range(0, len(batch), 100):
            self.client.log_batch(self.run_id, params=batch[i : i + 100])

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, value)

    def record_numerics(self, stage: str) -> None:
        """What `stage`'s process computed with (numerics.fingerprint) as tags numerics.<stage>.*:
        a result that differs between two runs explains itself from the runs alone."""
        from mlflow.entities import RunTag

        from reprovision.numerics import fingerprint

        tags = [RunTag(f"numerics.{stage}.{key}", value) for key, value in fingerprint().items()]
        self.client.log_batch(self.run_id, tags=tags)

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        self.log_steps({step: metrics})

    def log_steps(self, steps: dict[int, dict[str, float]]) -> None:
        """Metrics at several steps in as few MLflow requests as its batch limit allows (one
        commit each, not one per step), each holding whole steps: a kill leaves no step
        half-logged."""
        from mlflow.entities import Metric

        now, batches = int(time.time() * 1000), [[]]
        for step, metrics in steps.items():
            row = [Metric(k, float(v), now, step) for k, v in metrics.items()]
            if len(batches[-1]) + len(row) > MAX_BATCH_METRICS:
                batches.append([])
            batches[-1] += row
        for batch in batches:
            for i in range(0, len(batch), MAX_BATCH_METRICS):  # splits only a step over the limit
                self.client.log_batch(self.run_id, metrics=batch[i : i + MAX_BATCH_METRICS])

    def last_step(self, key: str) -> int:
        """The highest step logged for `key` (0 if none): where a resumed run picks up."""
        return max((m.step for m in self.client.get_metric_history(self.run_id, key)), default=0)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(path), artifact_path)

    def set_status(self, status: str) -> None:
        """RUNNING again on resume; FINISHED, FAILED or KILLED when train stops."""
        if status == "RUNNING":
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            self.client.set_terminated(self.run_id, status)


RUN_FILE = "run.json"  # in the train stage's checkpoint directory: neither git-tracked nor DVC-hashed


def recorded_run(path: Path, stage: str, configured: str | None = None) -> PipelineRun | None:
    """The MLflow run the train stage recorded at `path`, for evaluate and report to log into; None,
    said in one line, when there is none (a model pulled from a DVC remote, trained elsewhere).
    `configured` (tracking_uri of the stage's config) supplies the credentials the record omits."""
    if not path.is_file():
        print(f"{stage}: no MLflow run recorded at {path} (the model was trained elsewhere): not logged to MLflow")
        return None
    return PipelineRun(json.loads(path.read_text()), configured)
