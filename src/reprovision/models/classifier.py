"""The LightningModule that trains any net: the math of a step, the loss, the optimizer."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.plugins.precision import MixedPrecision
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from reprovision.errors import BadInput
from reprovision.models.nets import build_net, init_weights
from reprovision.models.optimizers import FUSED_DEVICES, build_optimizer, lr_schedule


class ImageClassifier(pl.LightningModule):
    """Cross-entropy classifier around `build_net(net['name'], ...)`.

    Hyperparameters are plain values (names, numbers, lists), so checkpoints load with
    `torch.load(..., weights_only=True)`; `mean`/`std` are the training split's channel
    statistics, kept here so a checkpoint alone can preprocess a raw image.
    """

    def __init__(
        self,
        net: dict,
        optim: dict,
        classes: list[str],
        image_shape: list[int],
        mean: list[float],
        std: list[float],
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)  # the stage logs the whole resolved config
        kwargs = {k: v for k, v in net.items() if k not in ("name", "init")}
        self.net = build_net(net["name"], image_shape, len(classes), **kwargs)
        init_weights(self.net, net.get("init", "default"))
        # Epoch metrics accumulate on the device. validate_args=False and nan_strategy="disable":
        # torchmetrics' input checks read values back to the host, a sync every step.
        for split in ("train", "val", "test"):
            setattr(self, f"{split}_acc", MulticlassAccuracy(len(classes), average="micro", validate_args=False))
            setattr(self, f"{split}_loss", MeanMetric(nan_strategy="disable"))
        self.flip_tta = False  # predict_step: average each image's and its mirror's predictions
        self.epoch_outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # see _shared_step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (N, C, H, W) to the normalised float input the net was trained on."""
        mean = torch.tensor(self.hparams.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.hparams.std, device=images.device).view(1, -1, 1, 1)
        return (images.float() / 255.0 - mean) / std

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        # Label smoothing shapes training only; val/test losses stay comparable across recipes.
        smoothing = self.hparams.label_smoothing if split == "train" else 0.0
        losses = F.cross_entropy(logits, y, label_smoothing=smoothing, reduction="none")  # one per image
        loss = losses.mean()
        acc, mean_loss = getattr(self, f"{split}_acc"), getattr(self, f"{split}_loss")
        # The loss metric takes one value per image, unweighted: MeanMetric ignores `weight` under
        # nan_strategy="disable" (torchmetrics 1.9, issue #3434), so weighted batch means would
        # average to a mean of batch means.
        if split == "train":
            # A training step keeps only its predictions and losses, on the device; the metrics take
            # the epoch's in one update at its last batch. An update per step cost ~0.2 ms of host
            # time (a dozen small ops), a tenth of a small net's step on a CPU.
            self.epoch_outputs.append((logits.detach().argmax(1), y, losses.detach()))
            if not self.trainer.is_last_batch:
                return loss
            preds, targets, epoch_losses = (torch.cat(t) for t in zip(*self.epoch_outputs, strict=True))
            self.epoch_outputs = []
            acc.update(preds, targets)
            mean_loss.update(epoch_losses.float())
        else:
            # update(), not metric(...): nothing is computed per step.
            acc.update(logits.detach(), y)
            mean_loss.update(losses.detach().float())
        # Lightning computes the logged metric objects once per epoch; under data-parallel training
        # they sum their counts over processes, so the epoch's values count every image once.
        # Validation and test hand them over every batch (they take few large batches).
        self.log(f"{split}/loss", mean_loss, on_step=False, on_epoch=True, prog_bar=split == "val")
        self.log(f"{split}/acc", acc, on_step=False, on_epoch=True, prog_bar=split == "val")
        return loss

    def training_step(self, batch, batch_idx):
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._shared_step(batch, "test")

    def predict_step(self, batch, batch_idx):
        logits = self(batch[0])
        if not self.flip_tta:
            return logits
        # Mean class probabilities of the image and its mirror, as log-probabilities: logits
        # whose softmax is that mean, so loss and accuracy read them like any others. In log
        # space, so a class both views rule out stays finite.
        views = torch.stack([logits.log_softmax(1), self(batch[0].flip(3)).log_softmax(1)])
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


def load_classifier(path: str | Path) -> ImageClassifier:
    """Load a checkpoint without unpickling arbitrary objects (weights_only=True)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise BadInput(
            f"{path}: refusing to load: it holds objects other than tensors and plain values "
            f"({str(e).splitlines()[-1].strip()[:120]}); use a checkpoint written by this pipeline"
        ) from None
    hparams = dict(ckpt["hyper_parameters"])
    hparams.pop("augment", None)  # written before augmentation moved to the DataModule; not the model's
    module = ImageClassifier(**hparams)
    module.load_state_dict(ckpt["state_dict"])
    return module.eval()
