"""The LightningModule: the optimizer it builds, its epoch metrics and its test-time augmentation."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from reprovision.config import compose, validate
from reprovision.data.datamodule import SplitDataModule
from reprovision.data.normalise import normalise
from reprovision.data.shards import load_split, save_split
from reprovision.files import write_json
from reprovision.models.module import Model
from reprovision.training.build import speed_up

IMAGE_INPUTS = {"kind": "image", "shape": [1, 8, 8], "mean": [0.0], "std": [1.0]}


def classifier(root, *overrides: str) -> Model:
    cfg = validate(compose(root / "conf", ["model=cnn", "model.channels=[4,8]", "model.hidden=8", *overrides]))
    return Model(
        net=dataclasses.asdict(cfg.model),
        optim=dataclasses.asdict(cfg.optim),
        task="classification",
        classes=["a", "b", "c"],
        inputs=IMAGE_INPUTS,
    )


def one_epoch(module: Model, data: SplitDataModule) -> pl.Trainer:
    """One epoch of a bare Trainer (no logger, checkpoints or sanity steps); the trainer after it."""
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(module, datamodule=data)
    return trainer


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
    data = SplitDataModule(tiny_split, tmp_path / "norm", batch_size=16, eval_batch_size=4)
    cfg = validate(compose(root / "conf", ["model=mlp", "model.hidden=[16]", "optim=sgd", "optim.lr=1e-12"]))
    stats = data.stats
    module = Model(
        dataclasses.asdict(cfg.model), dataclasses.asdict(cfg.optim), stats["task"], stats["classes"], stats["inputs"]
    )
    start = copy.deepcopy(module.net)
    trainer = one_epoch(module, data)

    for split in ("train", "val"):
        arrays = load_split(tiny_split, split)
        x, y = module.preprocess(torch.from_numpy(arrays["x"])), torch.from_numpy(arrays["y"])
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


def table_split(where, rng) -> None:
    """A regression table's split directory, as the split stage writes it: 3 features of very
    different ranges, a target that is a noisy function of them."""
    where.mkdir()
    sizes = {"train": 60, "val": 15, "test": 9}
    for split, n in sizes.items():
        x = (rng.normal(size=(n, 3)) * [1.0, 100.0, 0.01] + [0.0, 500.0, 3.0]).astype(np.float32)
        y = (2 * x[:, 0] + x[:, 1] / 50 + rng.normal(size=n)).astype(np.float32)
        save_split(where, split, x, y)
    features = ["a", "b", "c"]
    summary = {"kind": "table", "task": "regression", "classes": [], "target": "t", "features": features}
    write_json(where / "summary.json", {**summary, "sizes": sizes})


def test_regression_epoch_metrics_are_the_mean_absolute_and_squared_error_of_every_row(tmp_path, root):
    # As for classification: weights that cannot move, so each epoch's val/mae and val/loss must be
    # the starting net's over the whole split (15 rows in batches of 4: a mean of batch means differs).
    table_split(tmp_path / "split", np.random.default_rng(0))
    normalise(tmp_path / "split", tmp_path / "norm")
    data = SplitDataModule(tmp_path / "split", tmp_path / "norm", batch_size=16, eval_batch_size=4)
    cfg = validate(
        compose(root / "conf", ["data=diabetes", "model=mlp", "model.hidden=[8]", "optim=sgd", "optim.lr=1e-12"])
    )
    stats = data.stats
    assert stats["task"] == "regression" and stats["inputs"]["features"] == ["a", "b", "c"]
    module = Model(dataclasses.asdict(cfg.model), dataclasses.asdict(cfg.optim), "regression", [], stats["inputs"])
    start = copy.deepcopy(module.net)
    trainer = one_epoch(module, data)
    arrays = load_split(tmp_path / "split", "val")
    x, y = module.preprocess(torch.from_numpy(arrays["x"])), torch.from_numpy(arrays["y"])
    with torch.no_grad():
        predicted = start(x).squeeze(1)
    assert float(trainer.callback_metrics["val/mae"]) == pytest.approx(float((predicted - y).abs().mean()), rel=1e-5)
    assert float(trainer.callback_metrics["val/loss"]) == pytest.approx(float(((predicted - y) ** 2).mean()), rel=1e-5)
    assert "val/acc" not in trainer.callback_metrics


def test_a_regression_net_starts_at_the_training_splits_mean_target(tmp_path, root):
    """Its first answer is the mean baseline's, learnt from the training split alone (normalise's
    stats), not zero: on targets around 150 the early epochs would otherwise learn the scale."""
    rng = np.random.default_rng(0)
    table_split(tmp_path / "split", rng)
    for split, shift in (("train", 150.0), ("val", -80.0), ("test", 500.0)):  # only train's counts
        arrays = load_split(tmp_path / "split", split)
        save_split(tmp_path / "split", split, arrays["x"], (arrays["y"] + shift).astype(np.float32))
    stats = normalise(tmp_path / "split", tmp_path / "norm")
    train_y = load_split(tmp_path / "split", "train")["y"]
    assert stats["target_mean"] == pytest.approx(float(train_y.mean()))
    cfg = validate(compose(root / "conf", ["data=diabetes", "model.hidden=[8]", "model.init=he"]))
    module = Model(dataclasses.asdict(cfg.model), dataclasses.asdict(cfg.optim), "regression", [], stats["inputs"],
                   target_mean=stats["target_mean"])  # fmt: skip
    with torch.no_grad():
        zero = module(torch.zeros(1, len(stats["inputs"]["features"])))  # a row at the training mean
    assert float(zero.squeeze()) == pytest.approx(stats["target_mean"], rel=1e-6)  # he: zero biases below


def test_a_mid_epoch_checkpoint_of_the_one_process_format_still_resumes(root):
    """Checkpoints written before every process's share was kept (one process's RNG state, one
    list of kept predictions) are read as one process's: a run killed before an upgrade resumes."""
    from reprovision.training.callbacks import EpochRecorder

    torch.manual_seed(3)
    state, expected = torch.get_rng_state(), torch.rand(3)
    torch.manual_seed(99)
    EpochRecorder(("epoch",)).load_state_dict({"rows": [{"epoch": 1.0}], "torch_rng": state, "cuda_rng": []})
    assert torch.equal(torch.rand(3), expected)

    module, kept = classifier(root), [torch.tensor([1, 2]), torch.tensor([1, 0]), torch.tensor([0.5, 0.25])]
    module.on_load_checkpoint({"epoch_so_far": {"outputs": kept, "lr": 0.1}})
    assert [torch.equal(a, b) for a, b in zip(module.epoch_outputs[0], kept, strict=True)] == [True] * 3
    module.on_load_checkpoint({"epoch_so_far": {"by_process": [kept], "lr": 0.1}})
    assert module.epoch_outputs[0][2] is kept[2] and module.epoch_lr == 0.1
