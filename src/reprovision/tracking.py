"""Everything MLflow: where the store is, the run's tags, reopening the run of a pipeline run."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from reprovision.config import Config, flatten
from reprovision.data.fetch import masked
from reprovision.errors import BadInput

DEFAULT_URI = "sqlite:///mlflow.db"  # the embedded default: a SQLite store in the project root


def tracking_uri(cfg: Config) -> str:
    """$MLFLOW_TRACKING_URI, else `tracking.uri`, else the project's SQLite store.

    Under DVC the store is the project root's even when a queued experiment runs in a copy of
    the workspace (DVC sets $DVC_ROOT to the original root), so every run lands in one place.
    """
    if os.environ.get("MLFLOW_TRACKING_URI") or cfg.tracking.uri:
        return os.environ.get("MLFLOW_TRACKING_URI") or cfg.tracking.uri
    root = os.environ.get("DVC_ROOT")
    return f"sqlite:///{Path(root).resolve() / 'mlflow.db'}" if root else DEFAULT_URI


def artifact_location(uri: str) -> str | None:
    """Artifacts of a SQLite store live beside the database file; a server chooses its own."""
    if uri.startswith("sqlite:///"):
        return str(Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlruns")
    return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


VERSIONED = ("torch", "pytorch-lightning", "mlflow", "dvc", "hydra-core", "numpy")
PIPELINE_WRITES = (":!dvc.lock", ":!metrics")  # files the pipeline itself rewrites during a run
REPRODUCES_ENV = "REPROVISION_REPRODUCES"  # set by `reprovision reproduce` for the new run


def run_tags(data_dir: str | None = None) -> dict[str, str]:
    """Where the run came from: git commit and whether code/config differ from it, the DVC
    experiment, the data's hash in dvc.lock, and the versions that shape the numbers."""
    tags = {"python_version": platform.python_version()}
    tags.update({f"{pkg}_version": importlib.metadata.version(pkg) for pkg in VERSIONED})
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


MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value; the full config is an artifact
MAX_BATCH_METRICS = 1000  # MLflow's limit on metrics in one log_batch


def run_params(cfg: Config) -> dict[str, object]:
    """Every resolved value under its dotted key, credentials masked (log_params cuts values to
    MLflow's limit; config/params.yaml keeps them whole)."""
    params = flatten(cfg)
    if params.get("data.mirror"):
        params["data.mirror"] = masked(params["data.mirror"])  # never a password in MLflow
    return params


def dataset_params(summary: dict) -> dict[str, object]:
    """The dataset's facts (name, classes, raw size, split sizes); counts per class go in the
    summary artifact."""
    return {
        "dataset.name": summary["dataset"],
        "dataset.classes": ",".join(summary["classes"]),
        "dataset.num_classes": len(summary["classes"]),
        "dataset.image_shape": "x".join(map(str, summary["image_shape"])),
        "dataset.raw_bytes": summary["raw_bytes"],
        **{f"dataset.size.{split}": n for split, n in summary["sizes"].items()},
    }


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, before any training, when a tracking server does not answer (the MLflow
    client would otherwise retry for minutes)."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s):
            pass
    except OSError as e:
        raise BadInput(
            f"MLflow tracking server {masked(uri)} unreachable ({getattr(e, 'reason', e)}); start it, or unset "
            "MLFLOW_TRACKING_URI / tracking.uri to track in the local sqlite:///mlflow.db"
        ) from None


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Serialise work on a SQLite store that must not interleave: creating the store and its
    experiment (two pipelines starting at once would both run MLflow's schema migrations, and one
    would fail), and registering a model and moving `champion`. A server serialises its own."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    from filelock import FileLock

    with FileLock(f"{Path(uri.removeprefix('sqlite:///')).resolve()}.lock", timeout=300):
        yield


class PipelineRun:
    """The MLflow run of one pipeline run: train opens it, evaluate and report reopen it from
    `models/run.json`, a resumed train reopens it from its checkpoint directory."""

    def __init__(self, info: dict[str, str]) -> None:
        from mlflow.tracking import MlflowClient

        self.info = info
        self.run_id = info["run_id"]
        self.client = MlflowClient(info["tracking_uri"])

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
            client = MlflowClient(uri)
            experiment = client.get_experiment_by_name(cfg.tracking.experiment)
            experiment_id = (
                experiment.experiment_id
                if experiment
                else client.create_experiment(cfg.tracking.experiment, artifact_location=artifact_location(uri))
            )
        default_name = os.environ.get("DVC_EXP_NAME") or f"{cfg.data.name}-{cfg.model.name}-{cfg.optim.name}"
        tags = {"mlflow.runName": name or default_name, **run_tags(str(data_dir))}
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id  # shown nested under the parent in the UI
        run_id = client.create_run(experiment_id, tags=tags).info.run_id
        self = cls({"run_id": run_id, "experiment_id": experiment_id, "tracking_uri": uri})
        self.log_params({**run_params(cfg), **dataset_params(json.loads(summary_path.read_text()))})
        # The config that ran, whole, as reproduce restores it; a mirror's password masked.
        text = params_path.read_text()
        if cfg.data.mirror:
            text = text.replace(cfg.data.mirror, masked(cfg.data.mirror))
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


SERVING_CODE = Path(__file__).with_name("serving.py")  # the MLflow model's code (models from code)
CHAMPION = "champion"  # the registry alias that follows the best validation accuracy
SERVING_PACKAGES = ("torch", "pytorch-lightning", "torchmetrics", "mlflow", "numpy", "pandas", "pillow")


def log_classifier(run: PipelineRun, checkpoint: Path, classes: list[str], example_png: bytes) -> str:
    """Log the checkpoint as an MLflow model under the run (`runs:/ID/model`) with a signature
    and an input example: base64 image files in, `predicted`, `confidence`, `p_<class>` out.

    The project's package goes with it (`code_paths`), so the model runs the code it was trained
    with, anywhere its pip requirements are installed, not only inside a checkout.
    """
    import base64

    import mlflow
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    outputs = [ColSpec("string", "predicted"), ColSpec("double", "confidence")]
    outputs += [ColSpec("double", f"p_{c}") for c in classes]
    with fluent_api(run.info["tracking_uri"]), mlflow.start_run(run_id=run.run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(SERVING_CODE),
            artifacts={"checkpoint": str(checkpoint)},
            code_paths=[str(SERVING_CODE.parent)],
            signature=ModelSignature(inputs=Schema([ColSpec("string", "image")]), outputs=Schema(outputs)),
            input_example=pd.DataFrame({"image": [base64.b64encode(example_png).decode()]}),
            # Given, not inferred: inference imports the model in a subprocess and takes seconds.
            pip_requirements=[f"{pkg}=={importlib.metadata.version(pkg)}" for pkg in SERVING_PACKAGES],
        )
    return info.model_uri


@contextlib.contextmanager
def fluent_api(uri: str) -> Iterator[None]:
    """MLflow's module-level API (log_model, register_model, download_artifacts) on `uri`, for
    this block only.

    `mlflow.set_tracking_uri` also exports MLFLOW_TRACKING_URI, which would outrank `tracking.uri`
    for every later run of this process and its children; it is put back on the way out, and so
    are MLflow's log level and its download progress bars (off inside: not for stage logs). Its
    INFO chatter about models-from-code and input examples (by design here) is dropped; warnings
    still show.
    """
    import logging
    import warnings

    import mlflow

    logger = logging.getLogger("mlflow")
    level, before = logger.level, os.environ.get("MLFLOW_TRACKING_URI")
    bars = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    logger.setLevel(logging.WARNING)
    mlflow.set_tracking_uri(uri)
    try:
        with warnings.catch_warnings():
            # MLflow's signature code uses a pandas idiom pandas deprecates; nothing for us to act on.
            warnings.filterwarnings("ignore", message="Operation with range is deprecated")
            yield
    finally:
        mlflow.set_tracking_uri(before)  # None: unset again
        logger.setLevel(level)
        if bars is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = bars


def best_version(versions) -> object | None:
    """The registered version with the highest `val_acc` tag; among equals the oldest, so a
    later model takes the lead only by being strictly better."""
    scored = [v for v in versions if "val_acc" in v.tags]
    return min(scored, key=lambda v: (-float(v.tags["val_acc"]), int(v.version)), default=None)


def promote_champion(client, name: str) -> object | None:
    """Point `champion` at the best version of `name` (best_version); returns that version.

    Computed from every version rather than compared with the current champion, so two pipelines
    registering at once (`dvc queue start -j 2`) both end with the alias on the best, whichever
    sets it last.
    """
    best = best_version(client.search_model_versions(f"name='{name}'"))
    if best is not None:
        client.set_registered_model_alias(name, CHAMPION, best.version)
    return best


def register_classifier(run: PipelineRun, model_uri: str, name: str, val_acc: float) -> str:
    """Register the run's model as a new version of `name` tagged with its val/acc, and move
    `champion` to it only if it is strictly the best so far. Returns a line saying what happened."""
    import mlflow

    with fluent_api(run.info["tracking_uri"]), store_lock(run.info["tracking_uri"]):
        version = mlflow.register_model(model_uri, name, tags={"val_acc": str(val_acc)}).version
        champion = promote_champion(run.client, name)
    if str(champion.version) == str(version):
        return f"registered {name} version {version} (val/acc {val_acc:.4f}): now @{CHAMPION}"
    best = float(champion.tags["val_acc"])
    return (
        f"registered {name} version {version} (val/acc {val_acc:.4f}); "
        f"@{CHAMPION} stays version {champion.version} ({best:.4f})"
    )
