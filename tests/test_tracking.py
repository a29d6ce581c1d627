"""MLflow logging: a run's metrics reach the tracking store whole, in few requests."""

from __future__ import annotations

from collections import Counter

import pytest
from mlflow.tracking import MlflowClient

from reprovision.tracking import MAX_BATCH_METRICS, PipelineRun


def test_metrics_at_many_steps_reach_mlflow_whole_in_few_requests(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("epochs")).info.run_id
    run = PipelineRun({"run_id": run_id, "tracking_uri": uri})
    requests, log_batch = [], run.client.log_batch
    run.client.log_batch = lambda run_id, metrics: requests.append(metrics) or log_batch(run_id, metrics=metrics)

    # 300 epochs of 7 metrics: three requests of whole epochs (a kill never leaves one half-logged).
    run.log_steps({step: {f"m{k}": step + k / 10 for k in range(7)} for step in range(1, 301)})
    assert len(requests) == 3
    for batch in requests:
        assert len(batch) <= MAX_BATCH_METRICS
        assert set(Counter(m.step for m in batch).values()) == {7}
    for k in range(7):
        history = client.get_metric_history(run_id, f"m{k}")
        assert sorted((m.step, m.value) for m in history) == [(s, s + k / 10) for s in range(1, 301)]

    # One step over MLflow's limit (per-class metrics of many classes) is split, not refused.
    requests.clear()
    run.log_metrics({f"class{i}/recall": i / 1500 for i in range(1500)})
    assert [len(batch) for batch in requests] == [1000, 500]
    assert client.get_run(run_id).data.metrics["class1499/recall"] == 1499 / 1500


class RacingClient:
    """A store that, like PostgreSQL behind an MLflow server, breaks its unique key when another run
    inserted the same dataset a moment before: `fails` times, then accepts."""

    def __init__(self, fails: int, message: str) -> None:
        self.fails, self.message, self.calls = fails, message, 0

    def log_inputs(self, run_id, datasets):
        from mlflow.exceptions import MlflowException

        self.calls += 1
        if self.calls <= self.fails:
            raise MlflowException(self.message)


def test_logging_a_dataset_another_run_logged_at_the_same_moment_is_retried():
    from types import SimpleNamespace

    from mlflow.exceptions import MlflowException

    from reprovision.tracking.datasets import log_inputs

    race = 'duplicate key value violates unique constraint "dataset_pk"'
    client = RacingClient(1, race)
    log_inputs(SimpleNamespace(run_id="r", client=client), ["train"])
    assert client.calls == 2
    other = RacingClient(1, "RESOURCE_DOES_NOT_EXIST: run r")  # any other error is the user's to see
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        log_inputs(SimpleNamespace(run_id="r", client=other), ["train"])
    assert other.calls == 1


def test_an_experiment_another_run_made_at_the_same_moment_is_the_one_used():
    """Two queued runs start at once on a fresh team server: both find no experiment, the second's
    create hits the unique name, and it takes the experiment the first made."""
    from types import SimpleNamespace

    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS

    from reprovision.tracking.run import experiment_for

    class Raced:
        made = None  # the other run's experiment, made between this run's lookup and its create

        def get_experiment_by_name(self, name):
            return self.made

        def create_experiment(self, name, artifact_location=None):
            self.made = SimpleNamespace(experiment_id="7")
            raise MlflowException(f"Experiment(name={name}) already exists", error_code=RESOURCE_ALREADY_EXISTS)

    assert experiment_for(Raced(), "reprovision", None) == "7"

    class Refused(Raced):
        def create_experiment(self, name, artifact_location=None):
            raise MlflowException("PERMISSION_DENIED", error_code="PERMISSION_DENIED")

    with pytest.raises(MlflowException, match="PERMISSION_DENIED"):  # any other error is the user's to see
        experiment_for(Refused(), "reprovision", None)


CLASS_FOLDERS = ["c++", "c__", "dogs & cats", "it's (new)", "..", "a/b", "café", "x" * 300]


def test_class_names_mlflow_refuses_in_a_metric_name_are_logged_and_mapped_back(tmp_path):
    """Folder names are data: evaluate logs each class's metrics under a name MLflow takes, one per
    class, and per_class.csv (an artifact of the run) says which class each belongs to."""
    import torch
    from mlflow.utils.validation import _validate_metric_name

    from reprovision.evaluation import write_classification
    from reprovision.files import read_csv

    classes = CLASS_FOLDERS
    targets = torch.arange(len(classes)).repeat(3)
    logits = torch.randn(len(targets), len(classes), generator=torch.Generator().manual_seed(0))
    _, per_class = write_classification(tmp_path / "metrics", logits, targets, classes)
    for name in per_class:
        _validate_metric_name(name)
    assert len(per_class) == 2 * len(classes)  # no two classes share a name

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("classes")).info.run_id
    PipelineRun({"run_id": run_id, "tracking_uri": uri}).log_metrics(per_class)
    logged = client.get_run(run_id).data.metrics
    rows = read_csv(tmp_path / "metrics" / "evaluation" / "per_class.csv")
    assert [r["class"] for r in rows] == classes
    for row in rows:
        assert logged[f"test/recall/{row['mlflow_name']}"] == pytest.approx(float(row["recall"]))
    names = {r["class"]: r["mlflow_name"] for r in rows}
    assert (names["c++"], names["dogs & cats"], names["café"]) == ("c__", "dogs _ cats", "café")
    assert names["c__"] != names["c++"]


def test_a_pipeline_run_shows_its_source_user_and_the_stages_whole_time_in_mlflows_ui(
    tmp_path, root, tiny_split, monkeypatch
):
    """MLflow's UI reads its own system tags (Source, User) and the run's start: the command, the
    commit, the user, and the clock from the stage's start, start-up included, not from the fit's."""
    import getpass
    import sys

    import psutil

    from reprovision.config import compose, validate

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(root)  # a git checkout: the commit is known
    monkeypatch.setattr(sys, "argv", ["/venv/lib/reprovision/__main__.py", "train", "--params", "params.yaml"])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = validate(compose(root / "conf", [f"tracking.uri={uri}"]))
    run = PipelineRun.start(cfg, root / "params.yaml", tiny_split, tiny_split / "summary.json")
    recorded = MlflowClient(uri).get_run(run.run_id)
    tags = recorded.data.tags
    assert (tags["mlflow.source.name"], tags["mlflow.source.type"]) == ("reprovision train", "LOCAL")
    assert tags["mlflow.user"] == getpass.getuser() and len(tags["mlflow.source.git.commit"]) == 40
    assert recorded.info.start_time == int(psutil.Process().create_time() * 1000)
