"""The config stage sizes the net before any data is read: exactly for the built-in datasets, a
floor for a user's, so it never refuses a net that fits; the train stage sizes it again with the
data's own inputs."""

from __future__ import annotations

import dataclasses
import json

import psutil
import pytest
from tests.training.test_resume import ROOT, digits, in_process, train_cmd  # noqa: F401 (digits: a fixture)

from reprovision.config import compose, validate
from reprovision.models.footprint import parameter_count, training_bytes
from reprovision.models.nets import IMAGE_NETS
from reprovision.training.preflight import smallest_inputs

IMAGE_MODELS = sorted({name for name in IMAGE_NETS if name != "net_width"} | {"mlp"})  # a config file each


def count(cfg, inputs: dict, outputs: int) -> int:
    return parameter_count(dataclasses.asdict(cfg.model), inputs, outputs)


@pytest.mark.parametrize("model", IMAGE_MODELS)
def test_the_config_stage_sizes_each_net_for_digits_exactly_as_train_builds_it(digits, model):  # noqa: F811
    stats = json.loads((digits / "normalised" / "stats.json").read_text())
    cfg = validate(compose(ROOT / "conf", [f"model={model}"]))
    assert count(cfg, *smallest_inputs(cfg.data)) == count(cfg, stats["inputs"], len(stats["classes"]))


@pytest.mark.parametrize(
    ("overrides", "real_inputs", "outputs"),
    [
        (["data=table", "data.path=t.csv", "data.target=y", "model=mlp"], {"kind": "table", "features": ["a"] * 7}, 1),
        (["data=textfolder", "data.path=d", "model=mlp"], {"kind": "text", "vocabulary": ["w"] * 900}, 3),
        (["data=textfolder", "data.path=d", "model=text_cnn"], {"kind": "text", "vocabulary": ["w"] * 900}, 3),
        (["data=imagefolder", "data.path=d", "data.image_size=null"], {"kind": "image", "shape": [3, 40, 40]}, 2),
    ],
)
def test_where_the_config_does_not_fix_the_inputs_the_count_is_a_floor(overrides, real_inputs, outputs):
    cfg = validate(compose(ROOT / "conf", overrides))
    floor_inputs, floor_outputs = smallest_inputs(cfg.data)
    assert count(cfg, floor_inputs, floor_outputs) <= count(cfg, {**floor_inputs, **real_inputs}, outputs)


def test_the_train_stage_refuses_a_net_the_real_data_makes_too_large(digits, capsys, monkeypatch):  # noqa: F811
    """Past the config stage's floor: the data's own inputs, before the net is built."""
    stats = json.loads((digits / "normalised" / "stats.json").read_text())
    cfg = validate(compose(ROOT / "conf"))
    need = training_bytes(count(cfg, stats["inputs"], len(stats["classes"])), "adam")
    memory = psutil.virtual_memory()
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory._replace(available=need - 1))
    code, _, err = in_process(train_cmd(digits, digits / "too-large"), capsys)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("reprovision train: error: the model has ")
    assert not (digits / "too-large" / "checkpoints").exists()
