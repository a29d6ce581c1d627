"""The LightningModule that trains any net for its task: the math of a step, the loss, the optimizer."""

from __future__ import annotations

import math
import pickle
import re
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.plugins.precision import MixedPrecision
from torchmetrics import MeanAbsoluteError, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from reprovision.errors import BadInput
from reprovision.models.nets import NETS, build_net, init_weights
from reprovision.models.optimizers import FUSED_DEVICES, build_optimizer, lr_schedule
from reprovision.tasks import TASKS


class Model(pl.LightningModule):
    """Any net of `models.nets` trained for its task: classification (cross-entropy, accuracy) or
    regression (mean squared error, mean absolute error), chosen by `task`.

    Hyperparameters are plain values (names, numbers, lists), so checkpoints load with
    `torch.load(..., weights_only=True)`. `inputs` is the normalise stage's fit on the training
    split (`kind` image: shape, channel mean/std; table: features, mean/std; text: the
    vocabulary), kept here so a checkpoint alone turns a raw input into the net's. `target` names
    what a regression predicts (a table's column).
    """

    def __init__(
        self,
        net: dict,
        optim: dict,
        task: str,
        classes: list[str],
        inputs: dict,
        label_smoothing: float = 0.0,
        target: str = "",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)  # the stage logs the whole resolved config
        self.task = TASKS[task]
        kwargs = {k: v for k, v in net.items() if k not in ("name", "init")}
        self.net = build_net(net["name"], inputs, len(classes) if classes else 1, **kwargs)
        init_weights(self.net, net.get("init", "default"))
        # Epoch metrics accumulate on the device. validate_args=False and nan_strategy="disable":
        # torchmetrics' input checks read values back to the host, a sync every step.
        for split in ("train", "val", "test"):
            if self.task.name == "classification":
                score = MulticlassAccuracy(len(classes), average="micro", validate_args=False)
            else:
                score = MeanAbsoluteError()
            setattr(self, f"{split}_score", score)
            setattr(self, f"{split}_loss", MeanMetric(nan_strategy="disable"))
        self.flip_tta = False  # predict_step: average each image's and its mirror's predictions
        self.epoch_outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # see _shared_step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out if self.task.name == "classification" else out.squeeze(1)

    def preprocess(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw rows to the net's input: uint8 images (N, C, H, W) or table rows (N, F) normalised
        with the training split's statistics; text token ids pass as they are."""
        inputs = self.hparams.inputs
        if inputs["kind"] == "text":
            return raw
        mean = torch.tensor(inputs["mean"], device=raw.device)
        std = torch.tensor(inputs["std"], device=raw.device)
        if inputs["kind"] == "image":
            return (raw.float() / 255.0 - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
        return (raw.float() - mean) / std

    def losses(self, outputs: torch.Tensor, y: torch.Tensor, split: str) -> torch.Tensor:
        """One loss per example: cross-entropy (label smoothing in training only, so val/test
        losses compare across recipes) or squared error."""
        if self.task.name == "regression":
            return F.mse_loss(outputs, y, reduction="none")
        smoothing = self.hparams.label_smoothing if split == "train" else 0.0
        return F.cross_entropy(outputs, y, label_smoothing=smoothing, reduction="none")

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> torch.Tensor:
        x, y = batch
        outputs = self(x)
        losses = self.losses(outputs, y, split)
        loss = losses.mean()
        score, mean_loss = getattr(self, f"{split}_score"), getattr(self, f"{split}_loss")
        # The loss metric takes one value per example, unweighted: MeanMetric ignores `weight` under
        # nan_strategy="disable" (torchmetrics 1.9, issue #3434), so weighted batch means would
        # average to a mean of batch means.
        if split == "train":
            # A training step keeps only its predictions and losses, on the device; the metrics take
            # the epoch's in one update at its last batch. An update per step cost ~0.2 ms of host
            # time (a dozen small ops), a tenth of a small net's step on a CPU.
            kept = outputs.detach().argmax(1) if self.task.name == "classification" else outputs.detach()
            self.epoch_outputs.append((kept, y, losses.detach()))
            if not self.trainer.is_last_batch:  # the loader's end, or a smoke run's batch limit
                return loss
            preds, targets, epoch_losses = (torch.cat(t) for t in zip(*self.epoch_outputs, strict=True))
            self.epoch_outputs = []
            score.update(preds, targets)
            mean_loss.update(epoch_losses.float())
        else:
            # update(), not metric(...): nothing is computed per step.
            score.update(outputs.detach(), y)
            mean_loss.update(losses.detach().float())
        # Lightning computes the logged metric objects once per epoch; under data-parallel training
        # they sum their counts over processes, so the epoch's values count every example once.
        # Validation and test hand them over every batch (they take few large batches).
        self.log(f"{split}/loss", mean_loss, on_step=False, on_epoch=True, prog_bar=split == "val")
        self.log(f"{split}/{self.task.score}", score, on_step=False, on_epoch=True, prog_bar=split == "val")
        return loss

    def training_step(self, batch, batch_idx):
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._shared_step(batch, "test")

    def predict_step(self, batch, batch_idx):
        outputs = self(batch[0])
        if not self.flip_tta:
            return outputs
        # Mean class probabilities of the image and its mirror, as log-probabilities: logits
        # whose softmax is that mean, so loss and accuracy read them like any others. In log
        # space, so a class both views rule out stays finite.
        views = torch.stack([outputs.log_softmax(1), self(batch[0].flip(3)).log_softmax(1)])
        return torch.logsumexp(views, 0) - math.log(2)

    def on_train_epoch_start(self) -> None:
        self.epoch_outputs = []
        # Named the same for every optimizer, unlike LearningRateMonitor's `lr-<Optimizer>`.
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=False, on_epoch=True, sync_dist=True)

    def configure_optimizers(self):
        optim = self.hparams.optim
        # Fused kernels unscale gradients inside step(), so under mixed precision Lightning cannot
        # clip them first: keep torch's default (foreach) there, and on devices without a kernel.
        trainer = self._trainer
        clips_mixed = (
            trainer is not None and trainer.gradient_clip_val and isinstance(trainer.precision_plugin, MixedPrecision)
        )
        fused = (self.device.type in FUSED_DEVICES and not clips_mixed) or None
        optimizer = build_optimizer(self.parameters(), optim, fused)
        if optim["schedule"] == "constant" and not optim["warmup_epochs"]:
            return optimizer
        # Stepped every batch, so short runs follow the schedule smoothly.
        scheduler = lr_schedule(optimizer, optim, int(self.trainer.estimated_stepping_batches), self.trainer.max_epochs)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.net.parameters())


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint's contents, unpickling nothing but tensors and plain values (weights_only=True).
    One-line BadInput when it cannot be loaded so: the refused global named, or the file unreadable."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if refused := _refused_globals(path, e):
            raise BadInput(
                f"{path}: refusing to load: it would import {', '.join(refused)} (only tensors and plain values "
                "are loaded); use a checkpoint written by this pipeline"
            ) from None
        raise _unreadable(path, e) from None
    except (RuntimeError, EOFError, KeyError, ValueError, IndexError, UnicodeDecodeError) as e:
        raise _unreadable(path, e) from None  # truncated, or not torch.save's format: each gives its own
    if not isinstance(ckpt, dict):
        raise BadInput(f"{path}: holds a {type(ckpt).__name__}, not a checkpoint; use one written by this pipeline")
    return ckpt


def _refused_globals(path: str | Path, error: Exception) -> list[str]:
    """What torch refused to import: its own list, else (an old, non-zip file) its message's."""
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip checkpoint
        return re.findall(r"GLOBAL ([\w.]+)", str(error))


def _unreadable(path: str | Path, error: Exception) -> BadInput:
    message = (str(error).strip().splitlines() or [""])[0].split(". ")[0][:160]  # torch's first sentence
    plain = isinstance(error, RuntimeError | pickle.UnpicklingError) and message
    detail = message if plain else f"{type(error).__name__} {message}".strip()  # KeyError 101, EOFError
    return BadInput(f"{path}: not a readable checkpoint ({detail}): truncated or not a checkpoint; train again")


def load_model(path: str | Path) -> Model:
    """Load a checkpoint without unpickling arbitrary objects (weights_only=True), refusing in one
    line one that is not this pipeline's model."""
    ckpt = load_checkpoint(path)
    hparams = ckpt.get("hyper_parameters")
    net = hparams.get("net") if isinstance(hparams, dict) else None
    if not isinstance(net, dict) or net.get("name") not in NETS:
        name = net.get("name") if isinstance(net, dict) else None
        raise BadInput(
            f"{path}: not a model checkpoint of this pipeline (net {name!r}; known: {', '.join(NETS)}); "
            "train it with this version or pass another --model"
        )
    try:
        module = Model(**hparams)
        module.load_state_dict(ckpt["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:  # other settings or weights than the net's
        detail = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise BadInput(f"{path}: does not fit this pipeline's {net['name']} ({detail}); train it again") from None
    return module.eval()
