"""The data a run saw, as MLflow run inputs (the UI's Datasets column): the train, validation and
test splits, each with a hash of its shards' bytes as the digest, so runs on the same data show
the same digest, and the split output's hash in dvc.lock names the version to `dvc checkout`."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from reprovision.files import file_digest
from reprovision.tracking.run import PipelineRun, dvc_lock_md5

CONTEXTS = {"train": "training", "val": "validation", "test": "test"}


def log_split_inputs(run: PipelineRun, split_dir: Path, summary: dict) -> None:
    """One MLflow dataset input per split present (a fold's or a trial's scratch split has none)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    version = dvc_lock_md5(str(split_dir))  # the whole split output's hash, as dvc.lock has it
    inputs = []
    for split, context in CONTEXTS.items():
        path = split_dir / split
        if not (path / "index.json").is_file():
            continue
        source = {"uri": str(path), "dvc_out": str(split_dir), "dvc_md5": version}
        profile = {"num_rows": summary["sizes"][split], "num_classes": len(summary["classes"])}
        dataset = Dataset(
            name=f"{summary['dataset']}-{split}",
            digest=directory_digest(path),
            source_type="dvc",
            source=json.dumps(source),
            profile=json.dumps(profile),
        )
        inputs.append(DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)]))
    if inputs:
        log_inputs(run, inputs)


def directory_digest(path: Path) -> str:
    """md5 of the files of a directory, by name and bytes: the same shards give the same digest."""
    files = sorted(p for p in path.iterdir() if p.is_file())
    listing = "\n".join(f"{p.name} {file_digest(p, 'md5')}" for p in files)
    return hashlib.md5(listing.encode(), usedforsecurity=False).hexdigest()


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
