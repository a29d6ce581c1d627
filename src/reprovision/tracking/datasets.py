"""The data a run saw, as MLflow run inputs (the UI's Datasets column): the train, validation and
test splits, each with DVC's hash of its file as the digest, so runs on the same data show the
same digest, and the split output's hash in dvc.lock names the version to `dvc checkout`."""

from __future__ import annotations

import json
import time
from pathlib import Path

from reprovision.files import file_digest
from reprovision.tracking.run import PipelineRun, dvc_lock_md5

CONTEXTS = {"train": "training", "val": "validation", "test": "test"}


def log_split_inputs(run: PipelineRun, split_dir: Path, summary: dict) -> None:
    """One MLflow dataset input per split file present (a fold's or a trial's scratch split has none)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    version = dvc_lock_md5(str(split_dir))  # the whole split output's hash, as dvc.lock has it
    inputs = []
    for split, context in CONTEXTS.items():
        path = split_dir / f"{split}.npz"
        if not path.is_file():
            continue
        source = {"uri": str(path), "dvc_out": str(split_dir), "dvc_md5": version}
        profile = {"num_rows": summary["sizes"][split], "num_classes": len(summary["classes"])}
        dataset = Dataset(
            name=f"{summary['dataset']}-{split}",
            digest=file_digest(path, "md5"),  # DVC's hash of a file: the md5 of its bytes
            source_type="dvc",
            source=json.dumps(source),
            profile=json.dumps(profile),
        )
        inputs.append(DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)]))
    if inputs:
        log_inputs(run, inputs)


RACES = ("dataset_pk", "duplicate key", "UNIQUE constraint failed")  # PostgreSQL's and SQLite's words


def log_inputs(run: PipelineRun, inputs: list, attempts: int = 3) -> None:
    """MLflow's log_inputs, retried when another run inserted the same dataset at the same moment.

    The store looks a dataset up, then inserts it: two runs logging the same split at once (queue
    workers on a team server) both miss it, and the second insert breaks the unique key. Retried,
    the lookup finds the row the other run wrote."""
    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            run.client.log_inputs(run.run_id, datasets=inputs)
            return
        except MlflowException as e:
            if attempt == attempts - 1 or not any(word in str(e) for word in RACES):
                raise
            time.sleep(0.2 * (attempt + 1))
