"""The LightningModule: the optimizer it builds, its epoch metrics and its test-time augmentation."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from reprovision.config import compose, validate
from reprovision.data.datamodule import NormalisedDataModule
from reprovision.data.normalise import normalise
from reprovision.files import load_arrays
from reprovision.models.classifier import ImageClassifier
from reprovision.training.build import speed_up


def classifier(root, *overrides: str) -> ImageClassifier:
    cfg = validate(compose(root / "conf", ["model=cnn", "model.channels=[4,8]", "model.hidden=8", *overrides]))
    return ImageClassifier(
        net=dataclasses.asdict(cfg.model),
        optim=dataclasses.asdict(cfg.optim),
        classes=["a", "b", "c"],
        image_shape=[1, 8, 8],
        mean=[0.0],
        std=[1.0],
    )


def test_the_optimizer_uses_the_fused_kernel_where_torch_has_one(root):
    for option, fused in (("adam", True), ("nesterov", True), ("adagrad", True), ("rmsprop", None)):
        optimizer = classifier(root, f"optim={option}").configure_optimizers()  # constant schedule: no trainer
        assert optimizer.defaults.get("fused") is fused, option


def test_epoch_metrics_count_every_image_once(tiny_split, tmp_path, root):
    # A learning rate too small to move the weights: the epoch's loss and accuracy must be the
    # starting net's over each whole split. 60 training images in batches of 16 end with a batch
    # of 12, and 15 validation images in batches of 4 with one of 3, so a mean of batch means
    # would differ from the mean over images.
    normalise(tiny_split, tmp_path / "norm")
    data = NormalisedDataModule(tmp_path / "norm", batch_size=16, eval_batch_size=4)
    cfg = validate(compose(root / "conf", ["model=mlp", "model.hidden=[16]", "optim=sgd", "optim.lr=1e-12"]))
    stats = data.stats
    module = ImageClassifier(
        dataclasses.asdict(cfg.model), dataclasses.asdict(cfg.optim), stats["classes"], stats["image_shape"],
        stats["mean"], stats["std"],
    )  # fmt: skip
    start = copy.deepcopy(module.net)
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(module, datamodule=data)

    for split in ("train", "val"):
        arrays = load_arrays(tmp_path / "norm" / f"{split}.npz")
        x, y = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"])
        with torch.no_grad():
            logits = start(x)
        acc, loss = (float(trainer.callback_metrics[f"{split}/{k}"]) for k in ("acc", "loss"))
        assert acc == pytest.approx(float((logits.argmax(1) == y).float().mean()), abs=1e-6), split
        assert loss == pytest.approx(float(F.cross_entropy(logits, y)), abs=1e-6), split


def test_flip_tta_averages_the_probabilities_of_an_image_and_its_mirror(root):
    torch.manual_seed(0)
    module = classifier(root).eval()
    x = torch.randn(6, 1, 8, 8)
    with torch.no_grad():
        plain = module.predict_step((x,), 0)
        module.flip_tta = True
        tta = module.predict_step((x,), 0)
        mirrored = module(x.flip(3))
    torch.testing.assert_close(tta.softmax(1), (plain.softmax(1) + mirrored.softmax(1)) / 2)
    assert not torch.allclose(tta.softmax(1), plain.softmax(1), atol=1e-4)
    # An image that is its own mirror gets the same prediction with or without it.
    symmetric = torch.cat([x[..., :4], x[..., :4].flip(3)], dim=3)
    with torch.no_grad():
        torch.testing.assert_close(module.predict_step((symmetric,), 0).softmax(1), module(symmetric).softmax(1))


def test_channels_last_changes_the_layout_not_the_outputs_or_the_checkpoint(root):
    torch.manual_seed(0)
    module, plain = classifier(root).eval(), classifier(root).eval()
    plain.load_state_dict(module.state_dict())
    speed_up(module.net, channels_last=True, compile=False)
    convs = [m.weight for m in module.net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 2 and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not convs[1].is_contiguous()  # (the first, one input channel, is both layouts at once)
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(module(x), plain(x))
    fresh = classifier(root).eval()
    fresh.load_state_dict(module.state_dict())  # a checkpoint written in NHWC loads into a plain net
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), plain(x))


def test_flip_tta_stays_finite_for_classes_both_views_rule_out(root):
    torch.manual_seed(0)
    module = classifier(root).eval()
    module.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    module.net[1].weight.data *= 1e4  # logit gaps in the thousands: softmax underflows to 0
    module.flip_tta = True
    with torch.no_grad():
        logits = module.predict_step((torch.randn(6, 1, 8, 8),), 0)
    assert torch.isfinite(logits).all()
    assert torch.isfinite(torch.nn.functional.cross_entropy(logits, torch.arange(6) % 3))
