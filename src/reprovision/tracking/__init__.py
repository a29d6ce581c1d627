"""Everything MLflow: the store (store.py), a pipeline run's MLflow run (run.py), the model and
the registry (models.py). The names callers use are re-exported here."""

from reprovision.tracking.models import (
    CHAMPION,
    best_version,
    log_model,
    model_signature,
    promote_champion,
    register_model,
    score_tag,
    withdraw_versions,
)
from reprovision.tracking.run import (
    MAX_BATCH_METRICS,
    MAX_PARAM_CHARS,
    REPRODUCES_ENV,
    RUN_FILE,
    PipelineRun,
    metric_name_parts,
    recorded_run,
    run_params,
    run_tags,
)
from reprovision.tracking.store import DEFAULT_URI, check_reachable, fluent_api, store_lock, tracking_uri

__all__ = [
    "CHAMPION",
    "DEFAULT_URI",
    "MAX_BATCH_METRICS",
    "MAX_PARAM_CHARS",
    "REPRODUCES_ENV",
    "RUN_FILE",
    "PipelineRun",
    "best_version",
    "check_reachable",
    "fluent_api",
    "log_model",
    "metric_name_parts",
    "model_signature",
    "promote_champion",
    "recorded_run",
    "register_model",
    "run_params",
    "run_tags",
    "score_tag",
    "store_lock",
    "tracking_uri",
    "withdraw_versions",
]
