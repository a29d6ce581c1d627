"""The trained model as an MLflow model, and the registry: versions and the `champion` alias."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import TYPE_CHECKING

from reprovision.tasks import Task
from reprovision.tracking.run import PipelineRun
from reprovision.tracking.store import fluent_api, store_lock

if TYPE_CHECKING:
    import pandas as pd

SERVING_CODE = Path(__file__).parents[1] / "serving.py"  # the MLflow model's code (models from code)
CHAMPION = "champion"  # the registry alias that follows the best monitored validation metric
# What the served model imports (models.predictor: torch alone, no Lightning or torchmetrics).
SERVING_PACKAGES = ("torch", "mlflow", "numpy", "pandas", "pillow")


def model_signature(stats: dict) -> tuple[list, list]:
    """The served model's columns (MLflow ColSpecs), from the normalise stage's stats.json: in, an
    `image` (base64 file), a `text`, or one double per table feature; out, `predicted` (a class
    name with its `confidence` and `p_<class>` each, or a number)."""
    from mlflow.types import ColSpec

    spec = stats["inputs"]
    if spec["kind"] == "table":
        inputs = [ColSpec("double", f) for f in spec["features"]]
    else:
        inputs = [ColSpec("string", spec["kind"])]
    if stats["task"] == "regression":
        return inputs, [ColSpec("double", "predicted")]
    outputs = [ColSpec("string", "predicted"), ColSpec("double", "confidence")]
    return inputs, outputs + [ColSpec("double", f"p_{c}") for c in stats["classes"]]


def log_model(run: PipelineRun, checkpoint: Path, inputs: list, outputs: list, example: pd.DataFrame) -> str:
    """Log the checkpoint as an MLflow model under the run (`runs:/ID/model`) with a signature
    (`inputs`, `outputs`: MLflow ColSpecs) and an input example.

    The project's package goes with it (`code_paths`), so the model runs the code it was trained
    with, anywhere its pip requirements are installed, not only inside a checkout.
    """
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import Schema

    with fluent_api(run.uri), mlflow.start_run(run_id=run.run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(SERVING_CODE),
            artifacts={"checkpoint": str(checkpoint)},
            code_paths=[str(SERVING_CODE.parent)],
            signature=ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs)),
            input_example=example,
            # Given, not inferred: inference imports the model in a subprocess and takes seconds.
            pip_requirements=[f"{pkg}=={importlib.metadata.version(pkg)}" for pkg in SERVING_PACKAGES],
        )
    return info.model_uri


LOSS_TAG = "val_loss"  # a registered version's validation loss: the champion rule's tie-break


def score_tag(task: Task) -> str:
    """The registry tag holding a version's monitored validation metric: val_acc, val_mae."""
    return task.monitor.replace("/", "_")


def best_version(versions, task: Task) -> object | None:
    """The registered version that ranks best by the task's rule (Task.rank on its tags: the
    monitored metric, ties to the lower val_loss); among equals the oldest, so a later model takes
    the lead only by being strictly better."""
    tag = score_tag(task)
    # Only the task's own versions: a name shared by two tasks never crowns the other's model.
    scored = [v for v in versions if tag in v.tags and v.tags.get("task", "classification") == task.name]

    def rank(v) -> tuple:
        row = {task.monitor: float(v.tags[tag]), "val/loss": float(v.tags.get(LOSS_TAG, "inf"))}
        return (*task.rank(row), -int(v.version))

    return max(scored, key=rank, default=None)


def promote_champion(client, name: str, task: Task) -> object | None:
    """Point `champion` at the best version of `name` (best_version); returns that version.

    Computed from every version rather than compared with the current champion, so two pipelines
    registering at once (`dvc queue start -j 2`) both end with the alias on the best, whichever
    sets it last.
    """
    best = best_version(client.search_model_versions(f"name='{name}'"), task)
    if best is not None:
        client.set_registered_model_alias(name, CHAMPION, best.version)
    return best


def register_model(run: PipelineRun, model_uri: str, name: str, task: Task, summary: dict) -> str:
    """Register the run's model as a new version of `name` tagged with its monitored metric and
    validation loss, and move `champion` to it only if it is strictly the best so far. Returns a
    line saying what happened."""
    import mlflow

    tag, score = score_tag(task), summary[task.monitor]
    tags = {tag: str(score), LOSS_TAG: str(summary["val/loss"]), "task": task.name}
    with fluent_api(run.uri), store_lock(run.uri):
        version = mlflow.register_model(model_uri, name, tags=tags).version
        champion = promote_champion(run.client, name, task)
    if str(champion.version) == str(version):
        return f"registered {name} version {version} ({task.monitor} {score:.4f}): now @{CHAMPION}"
    best = float(champion.tags[tag])
    return (
        f"registered {name} version {version} ({task.monitor} {score:.4f}); "
        f"@{CHAMPION} stays version {champion.version} ({best:.4f})"
    )


def withdraw_versions(run: PipelineRun, task: Task) -> list[str]:
    """Delete the registry versions of `run`'s model (a model whose test metrics are not finite
    must not be served) and point `champion` at the best of the rest. Returns `name version` each."""
    withdrawn = []
    with store_lock(run.uri):
        for version in run.client.search_model_versions(f"run_id='{run.run_id}'"):
            run.client.delete_model_version(version.name, version.version)
            promote_champion(run.client, version.name, task)
            withdrawn.append(f"{version.name} version {version.version}")
    return withdrawn
