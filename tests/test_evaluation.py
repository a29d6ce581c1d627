"""evaluate: the metrics agree with independent implementations (scikit-learn, and torchmetrics,
whose definitions they follow), and the stages that only run a trained net start without
Lightning or torchmetrics."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score
from torchmetrics.functional import mean_absolute_error, mean_squared_error, r2_score
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from reprovision.evaluation import classification_metrics, regression_metrics


def test_metrics_match_scikit_learn():
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 4, (200,), generator=g)
    logits = torch.randn(200, 4, generator=g)
    logits[torch.arange(200), targets] += 1.0  # better than chance, not perfect
    pred = logits.argmax(1).numpy()
    y = targets.numpy()
    m = classification_metrics(logits, targets, ["a", "b", "c", "d"])
    assert np.isclose(m["test/acc"], accuracy_score(y, pred))
    assert np.isclose(m["test/f1_macro"], f1_score(y, pred, average="macro"))
    assert np.isclose(m["test/loss"], torch.nn.functional.cross_entropy(logits, targets).item())
    assert np.allclose([r["precision"] for r in m["per_class"]], precision_score(y, pred, average=None))
    assert np.allclose([r["recall"] for r in m["per_class"]], recall_score(y, pred, average=None))
    assert m["confusion_matrix"] == confusion_matrix(y, pred).tolist()  # rows actual, columns predicted


@pytest.mark.parametrize("seed", range(5))
def test_classification_metrics_are_torchmetrics_own_to_the_bit(seed):
    # Five classes, the last never in the targets: one seed in two never predicts it either (it
    # must then leave the macro average), the others predict it (it counts, with F1 0).
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, 4, (300,), generator=g)
    logits = torch.randn(300, 5, generator=g)
    logits[torch.arange(300), targets] += 1.5
    logits[:, 4] += 1.0 if seed % 2 else -9.0
    m = classification_metrics(logits, targets, list("abcde"))
    args = (logits, targets, 5)
    assert m["test/acc"] == multiclass_accuracy(*args, average="micro").item()
    assert m["test/f1_macro"] == multiclass_f1_score(*args, average="macro").item()
    for name, metric in (
        ("precision", multiclass_precision),
        ("recall", multiclass_recall),
        ("f1", multiclass_f1_score),
    ):
        expected = metric(*args, average="none", zero_division=0).tolist()
        assert [r[name] for r in m["per_class"]] == expected, name


@pytest.mark.parametrize("seed", range(5))
def test_regression_metrics_are_torchmetrics_own_to_the_bit(seed):
    g = torch.Generator().manual_seed(seed)
    actual = 150 + 60 * torch.randn(89, generator=g)
    predicted = actual + 40 * torch.randn(89, generator=g)
    m = regression_metrics(predicted, actual)
    assert m["test/mae"] == mean_absolute_error(predicted, actual).item()
    assert m["test/mse"] == mean_squared_error(predicted, actual).item()
    assert m["test/r2"] == r2_score(predicted, actual).item()
    assert m["test/rmse"] == m["test/mse"] ** 0.5


def test_stages_that_only_run_a_trained_net_start_without_lightning_or_torchmetrics():
    # Importing Lightning costs seconds per process (with torchmetrics it imports torchvision's
    # models, torch._dynamo and scipy.signal); evaluate, report, predict and the served model
    # never train.
    modules = ["reprovision.stages.evaluate", "reprovision.stages.report", "reprovision.commands.predict"]
    code = f"import sys; import {', '.join([*modules, 'reprovision.serving'])}; print(sorted(sys.modules))"
    loaded = set(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("'")
    )
    assert not loaded & {"pytorch_lightning", "lightning_fabric", "torchmetrics", "torchvision"}


@pytest.mark.parametrize("cuda", [False, True])
@pytest.mark.parametrize("mps", [False, True])
@pytest.mark.parametrize("processor", ["arm", "i386"])
@pytest.mark.parametrize("disable_mps", ["0", "1"])
def test_the_accelerator_maps_to_the_device_lightning_picks(monkeypatch, cuda, mps, processor, disable_mps):
    """gpu and auto pick what Lightning's own accelerator choice picks on every machine (MPS only on
    Apple silicon without DISABLE_MPS=1); gpu where Lightning finds none: one line naming the fix."""
    import platform

    from lightning_fabric.accelerators.cuda import CUDAAccelerator as FabricCUDA
    from lightning_fabric.accelerators.mps import MPSAccelerator
    from lightning_fabric.utilities.device_parser import _select_auto_accelerator
    from pytorch_lightning.accelerators import CUDAAccelerator
    from pytorch_lightning.trainer.connectors.accelerator_connector import _AcceleratorConnector
    from pytorch_lightning.utilities.exceptions import MisconfigurationException

    from reprovision.errors import BadInput
    from reprovision.models.predictor import device_for

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    for accelerator in (CUDAAccelerator, FabricCUDA):  # Lightning counts CUDA devices its own way
        monkeypatch.setattr(accelerator, "is_available", staticmethod(lambda: cuda))
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    monkeypatch.setattr(platform, "processor", lambda: processor)
    monkeypatch.setenv("DISABLE_MPS", disable_mps)
    MPSAccelerator.is_available.cache_clear()
    try:
        assert device_for("auto").type == _select_auto_accelerator()
        assert device_for("cpu").type == "cpu"
        try:
            lightning_gpu = _AcceleratorConnector._choose_gpu_accelerator_backend()
        except MisconfigurationException:
            with pytest.raises(
                BadInput, match=r"^trainer.accelerator=gpu but no GPU .*set trainer.accelerator=cpu or auto$"
            ):
                device_for("gpu")
        else:
            assert device_for("gpu").type == lightning_gpu
    finally:
        MPSAccelerator.is_available.cache_clear()
