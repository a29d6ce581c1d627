"""A search's Optuna study in a shared database (`search.storage`): several workers (SLURM array
tasks, DVC queue workers, machines) draw trials from one study, report each as a child of one
MLflow parent run, and a rerun after a crash resumes the study where it stopped."""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator

from reprovision import tracking
from reprovision.config import SearchConfig
from reprovision.errors import BadInput
from reprovision.tasks import Task
from reprovision.urls import masked

PARENT = "mlflow_parent"  # the study's user attribute holding the MLflow parent run
JOIN_S = 60  # how long a joining worker waits for the first worker to open the parent run
HEARTBEAT_S = 30  # a trial whose worker died is failed after missing heartbeats, and retried once


def open_study(search: SearchConfig, start_parent: Callable[[], tracking.PipelineRun], tracking_uri: str, task: Task):
    """The shared study and its MLflow parent run: created by the first worker, joined by the rest
    (`tracking_uri`, this worker's store, supplies the credentials the recorded run leaves out)."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    try:
        # Two workers starting on a new SQLite file would both create Optuna's tables (one fails on
        # alembic_version); a server database serialises that itself.
        with tracking.store_lock(search.storage), _heartbeats():
            storage = RDBStorage(
                search.storage,
                heartbeat_interval=HEARTBEAT_S,
                grace_period=3 * HEARTBEAT_S,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
            )
    except Exception as e:  # a bad URL, an unreachable server, a missing driver: SQLAlchemy's many types
        raise BadInput(f"search.storage={masked(search.storage)}: {str(e).splitlines()[0]}") from None
    name = search.study or search.name
    # Unseeded: workers sharing a seed would draw the same first trials.
    sampler = optuna.samplers.TPESampler()
    try:
        study = optuna.create_study(storage=storage, study_name=name, direction=task.mode + "imize", sampler=sampler)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        return study, tracking.PipelineRun(_parent_of(study), tracking_uri)
    parent = start_parent()
    study.set_user_attr(PARENT, parent.info)
    return study, parent


def _parent_of(study) -> dict:
    deadline = time.monotonic() + JOIN_S
    while PARENT not in study.user_attrs:
        if time.monotonic() > deadline:
            raise BadInput(f"study {study.study_name!r} has no MLflow parent run; delete the study or name another")
        time.sleep(1)
    return study.user_attrs[PARENT]


def completed(study) -> list:
    import optuna

    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


def fail_stale(study) -> None:
    """Mark failed the running trials whose worker stopped sending heartbeats (killed, preempted);
    the retry callback queues each one's values again (WAITING) for the next worker to run."""
    import optuna

    with _heartbeats():
        optuna.storages.fail_stale_trials(study)


@contextlib.contextmanager
def _heartbeats() -> Iterator[None]:
    """Optuna marks heartbeats and the stale-trial retry experimental; they are chosen here on
    purpose, so their warnings are not repeated at every worker's start and every wait."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def wait_for_others(study, timeout_s: float) -> bool:
    """Until no trial of the study is running (another worker's last one); False on timeout. A
    running trial whose worker died is failed on the way (`fail_stale`), so the wait ends with it."""
    import optuna

    deadline = time.monotonic() + timeout_s
    while True:
        fail_stale(study)
        if not any(t.state == optuna.trial.TrialState.RUNNING for t in study.trials):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
