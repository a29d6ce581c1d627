"""Nothing unsafe is loaded, nothing secret is logged, nothing too long breaks tracking."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from reprovision.config import compose, validate
from reprovision.errors import BadInput
from reprovision.models.predictor import load_predictor
from reprovision.tracking import MAX_PARAM_CHARS, PipelineRun


def test_a_checkpoint_that_runs_code_on_load_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class RunsCode:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "model.ckpt"
    torch.save({"hyper_parameters": {}, "state_dict": {}, "extra": RunsCode()}, path)
    with pytest.raises(BadInput, match="refusing to load"):
        load_predictor(path)
    assert not marker.exists()


def test_a_login_in_a_url_is_masked_and_long_values_cut_but_kept_whole_in_the_config_artifact(
    tmp_path, root, tiny_split, monkeypatch
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    long_path = "x" * (MAX_PARAM_CHARS + 500)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = validate(
        compose(root / "conf", [f"data.mirror=https://alice-s3cret@mirror.example/{long_path}", f"tracking.uri={uri}"])
    )
    params = tmp_path / "params.yaml"
    params.write_text(f"data:\n  mirror: https://alice-s3cret@mirror.example/{long_path}\n")
    run = PipelineRun.start(cfg, params, tiny_split, tiny_split / "summary.json")

    client = MlflowClient(uri)
    logged = client.get_run(run.run_id).data.params
    assert logged["data.mirror"].startswith("https://***@mirror.example/xxx")
    assert "s3cret" not in json.dumps(logged)
    assert len(logged["data.mirror"]) == MAX_PARAM_CHARS
    artifact = client.download_artifacts(run.run_id, "config/params.yaml", str(tmp_path / "dl"))
    text = Path(artifact).read_text()
    assert long_path in text and "s3cret" not in text  # the whole config, password masked
