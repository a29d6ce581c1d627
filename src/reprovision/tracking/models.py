"""The trained classifier as an MLflow model, and the registry: versions and the `champion` alias."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from reprovision.tracking.run import PipelineRun
from reprovision.tracking.store import fluent_api, store_lock

SERVING_CODE = Path(__file__).parents[1] / "serving.py"  # the MLflow model's code (models from code)
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
    with fluent_api(run.uri), mlflow.start_run(run_id=run.run_id):
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

    with fluent_api(run.uri), store_lock(run.uri):
        version = mlflow.register_model(model_uri, name, tags={"val_acc": str(val_acc)}).version
        champion = promote_champion(run.client, name)
    if str(champion.version) == str(version):
        return f"registered {name} version {version} (val/acc {val_acc:.4f}): now @{CHAMPION}"
    best = float(champion.tags["val_acc"])
    return (
        f"registered {name} version {version} (val/acc {val_acc:.4f}); "
        f"@{CHAMPION} stays version {champion.version} ({best:.4f})"
    )
