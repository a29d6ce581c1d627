"""The LightningModule that trains any net: the math of a step, the loss, the optimizer."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from reprovision.errors import BadInput
from reprovision.models.nets import build_net

OPTIMIZERS = {
    "sgd": lambda params, o: torch.optim.SGD(params, lr=o["lr"], weight_decay=o["weight_decay"]),
    "momentum": lambda params, o: torch.optim.SGD(
        params, lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"]
    ),
    "adam": lambda params, o: torch.optim.Adam(
        params, lr=o["lr"], betas=tuple(o["betas"]), weight_decay=o["weight_decay"]
    ),
}


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
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)  # the stage logs the whole resolved config
        kwargs = {k: v for k, v in net.items() if k != "name"}
        self.net = build_net(net["name"], image_shape, len(classes), **kwargs)
        self.train_acc = MulticlassAccuracy(num_classes=len(classes), average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=len(classes), average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=len(classes), average="micro")

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
        loss = F.cross_entropy(logits, y)
        acc = getattr(self, f"{split}_acc")
        acc(logits, y)
        # Epoch-level only: one value per epoch reaches the logger, no per-step syncs.
        self.log(f"{split}/loss", loss, on_step=False, on_epoch=True, prog_bar=split == "val")
        self.log(f"{split}/acc", acc, on_step=False, on_epoch=True, prog_bar=split == "val")
        return loss

    def training_step(self, batch, batch_idx):
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._shared_step(batch, "test")

    def predict_step(self, batch, batch_idx):
        return self(batch[0])

    def on_train_epoch_start(self) -> None:
        # Named the same for every optimizer, unlike LearningRateMonitor's `lr-<Optimizer>`.
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=False, on_epoch=True)

    def configure_optimizers(self):
        optim = self.hparams.optim
        optimizer = OPTIMIZERS[optim["name"]](self.parameters(), optim)
        if optim["schedule"] == "constant":
            return optimizer
        # cosine: stepped every batch, so short runs decay smoothly to zero.
        steps = self.trainer.estimated_stepping_batches
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def load_classifier(path: str | Path) -> ImageClassifier:
    """Load a checkpoint without unpickling arbitrary objects (weights_only=True)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise BadInput(
            f"{path}: refusing to load: it holds objects other than tensors and plain values "
            f"({str(e).splitlines()[-1].strip()[:120]}); use a checkpoint written by this pipeline"
        ) from None
    module = ImageClassifier(**ckpt["hyper_parameters"])
    module.load_state_dict(ckpt["state_dict"])
    return module.eval()
