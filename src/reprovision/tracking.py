"""Everything MLflow: where the store is, the run's tags, reopening the run of a pipeline run."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from reprovision.config import Config, flatten
from reprovision.data.fetch import masked

DEFAULT_URI = "sqlite:///mlflow.db"  # the embedded default: a SQLite store in the project root


def tracking_uri(cfg: Config) -> str:
    """$MLFLOW_TRACKING_URI, else `tracking.uri`, else the project's SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or cfg.tracking.uri or DEFAULT_URI


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


REPRODUCES_ENV = "REPROVISION_REPRODUCES"  # set by `reprovision reproduce` for the new run


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


def log_config(logger, params_path: Path) -> None:
    """The resolved config as an artifact: what `reprovision reproduce` restores."""
    logger.experiment.log_artifact(logger.run_id, str(params_path), "config")


def lightning_logger(cfg: Config, data_dir: str | None = None):
    """Lightning's MLflow logger: opens the pipeline run, logs epoch metrics and checkpoints."""
    from pytorch_lightning.loggers import MLFlowLogger

    class EpochMLFlowLogger(MLFlowLogger):
        # Metrics are logged once an epoch; step = epochs completed (1, 2, ...) rather than
        # Lightning's global batch count, so runs with different batch sizes line up in the UI.
        def log_metrics(self, metrics, step=None):
            metrics = dict(metrics)
            epoch = metrics.pop("epoch", None)
            super().log_metrics(metrics, step=step if epoch is None else int(epoch) + 1)

    run_name = os.environ.get("DVC_EXP_NAME") or f"{cfg.data.name}-{cfg.model.name}-{cfg.optim.name}"
    logger = EpochMLFlowLogger(
        experiment_name=cfg.tracking.experiment,
        run_name=run_name,
        tracking_uri=tracking_uri(cfg),
        artifact_location=artifact_location(tracking_uri(cfg)),
        tags=run_tags(data_dir),
        log_model=True,
    )
    params = flatten(cfg)
    if params.get("data.mirror"):
        params["data.mirror"] = masked(params["data.mirror"])  # never a password in MLflow
    logger.log_hyperparams(params)
    return logger


def log_dataset(logger, summary: dict, summary_path: Path) -> None:
    """The dataset's facts as params (name, classes, raw size, split sizes); the full summary,
    with class counts per split, as an artifact."""
    params = {
        "dataset.name": summary["dataset"],
        "dataset.classes": ",".join(summary["classes"]),
        "dataset.num_classes": len(summary["classes"]),
        "dataset.image_shape": "x".join(map(str, summary["image_shape"])),
        "dataset.raw_bytes": summary["raw_bytes"],
        **{f"dataset.size.{split}": n for split, n in summary["sizes"].items()},
    }
    logger.log_hyperparams(params)
    logger.experiment.log_artifact(logger.run_id, str(summary_path), "data")


class PipelineRun:
    """The MLflow run train opened, reopened by later stages from `models/run.json`."""

    def __init__(self, info: dict[str, str]) -> None:
        from mlflow.tracking import MlflowClient

        self.run_id = info["run_id"]
        self.client = MlflowClient(info["tracking_uri"])

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for i in range(0, len(batch), 1000):  # MLflow's batch limit
            self.client.log_batch(self.run_id, metrics=batch[i : i + 1000])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(path), artifact_path)

    def set_tags(self, tags: dict[str, Any]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, v)
