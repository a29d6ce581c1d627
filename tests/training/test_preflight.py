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
    need = training_bytes(count(cfg, stats["inputs"], len(stats["classes"])), dataclasses.asdict(cfg.optim))
    memory = psutil.virtual_memory()
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory._replace(available=need - 1))
    code, _, err = in_process(train_cmd(digits, digits / "too-large"), capsys)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("reprovision train: error: the model has ")
    assert not (digits / "too-large" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("optim", "tensors"),
    [(["optim=adam"], 2), (["optim=rmsprop"], 1), (["optim=rmsprop", "optim.momentum=0.9"], 2), (["optim=sgd"], 0),
     (["optim=momentum"], 1), (["optim=adagrad"], 1)],
)  # fmt: skip
def test_the_optimizer_state_counted_is_what_torch_keeps(optim, tensors):
    """torch's own optimizers after one step: the tensors they keep per parameter (a momentum buffer
    only where momentum is not 0), so the memory check never counts more than training takes."""
    import torch

    from reprovision.models.footprint import state_tensors
    from reprovision.models.optimizers import build_optimizer

    cfg = validate(compose(ROOT / "conf", optim))
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = build_optimizer([weight], dataclasses.asdict(cfg.optim), fused=False)
    weight.grad = torch.ones(3)
    optimizer.step()
    kept = [v for v in optimizer.state[weight].values() if isinstance(v, torch.Tensor) and v.shape == weight.shape]
    assert state_tensors(dataclasses.asdict(cfg.optim)) == len(kept) == tensors


@pytest.mark.parametrize(("data", "model"), [("imdb", "mlp"), ("reuters", "text_cnn")])
def test_the_built_in_corpora_are_sized_with_their_vocabulary(data, model):
    """IMDB's and Reuters' vocabularies are data.num_words words (their training splits have more):
    the check counts the net train builds, not a five-word floor."""
    cfg = validate(compose(ROOT / "conf", [f"data={data}", f"model={model}"]))
    inputs, _ = smallest_inputs(cfg.data)
    assert len(inputs["vocabulary"]) == 4 + cfg.data.num_words
