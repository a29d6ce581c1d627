"""Nets adapt to channels, image size and class count; every config option has a net."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from reprovision.config import MODEL_SCHEMAS, OPTIM_SCHEMAS
from reprovision.models.nets import NETS, build_net
from reprovision.models.system import OPTIMIZERS

KWARGS = {"cnn": {"channels": [8, 16], "hidden": 32, "dropout": 0.1}, "mlp": {"hidden": [32], "dropout": 0.0}}


@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize(("shape", "classes"), [((1, 8, 8), 10), ((3, 32, 32), 2), ((3, 28, 20), 7)])
def test_output_shape(name, shape, classes):
    net = build_net(name, list(shape), classes, **KWARGS[name])
    assert net(torch.zeros(5, *shape)).shape == (5, classes)


def test_config_schemas_match_the_registries():
    assert set(MODEL_SCHEMAS) == set(NETS)
    assert set(OPTIM_SCHEMAS) == set(OPTIMIZERS)
    for name, schema in MODEL_SCHEMAS.items():
        fields = {f.name for f in dataclasses.fields(schema)} - {"name"}
        assert fields == set(KWARGS[name]), name
