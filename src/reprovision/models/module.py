"""The LightningModule that trains any net for its task: the math of a step, the loss, the optimizer.
Its forward pass and input preprocessing are `predictor.Inference`'s, shared with inference."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.plugins.precision import MixedPrecision
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from reprovision.models.nets import build_net, init_weights
from reprovision.models.optimizers import FUSED_DEVICES, build_optimizer, lr_schedule
from reprovision.models.predictor import Inference
from reprovision.tasks import TASKS


def start_at(net: nn.Module, value: float) -> None:
    """A regression net's output bias set to `value` (the training split's mean target): its first
    predictions are the mean baseline's, not zero, so the early epochs learn the data, not its scale
    (data=table on diabetes, 30 epochs: test MAE 42.43 where it was 54.15, R² 0.47 where it was 0.01)."""
    last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.bias.fill_(value)


class Model(Inference, pl.LightningModule):
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
        target_mean: float | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)  # the stage logs the whole resolved config
        self.task = TASKS[task]
        kwargs = {k: v for k, v in net.items() if k not in ("name", "init")}
        self.net = build_net(net["name"], inputs, len(classes) if classes else 1, **kwargs)
        init_weights(self.net, net.get("init", "default"))
        if self.task.name == "regression" and target_mean is not None:
            start_at(self.net, target_mean)
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
            # (a checkpoint's part of the epoch was loaded onto the CPU)
            parts = zip(*self.epoch_outputs, strict=True)
            preds, targets, epoch_losses = (torch.cat([p.to(outputs.device) for p in t]) for t in parts)
            self.epoch_outputs = []
            score.update(preds, targets)
            mean_loss.update(epoch_losses.float())
            # The learning rate the epoch started with (on_train_epoch_start, or a mid-epoch checkpoint).
            self.log("train/lr", self.epoch_lr, on_step=False, on_epoch=True, sync_dist=True)
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

    def on_train_epoch_start(self) -> None:
        self.epoch_outputs = []
        # Named the same for every optimizer, unlike LearningRateMonitor's `lr-<Optimizer>`.
        self.epoch_lr = float(self.optimizers().param_groups[0]["lr"])

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Mid-epoch (a long epoch's `last.ckpt`): what the epoch's metrics are made of so far, every
        # process's share (each resumes its own), so a run resumed there logs the epoch an
        # uninterrupted run would. Epoch-end checkpoints (the published model's among them) have none.
        if self.epoch_outputs:
            kept = [torch.cat([p.to(self.device) for p in t]) for t in zip(*self.epoch_outputs, strict=True)]
            shares = zip(*(by_process(self._trainer, t) for t in kept), strict=True)  # by rank
            checkpoint["epoch_so_far"] = {"by_process": [list(share) for share in shares], "lr": self.epoch_lr}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Lightning calls no on_train_epoch_start for an epoch resumed mid-way.
        if "epoch_so_far" in checkpoint:
            so_far, (rank, world) = checkpoint["epoch_so_far"], process_rank(self._trainer)
            shares = so_far.get("by_process") or [so_far["outputs"]]  # or one process's, as written before
            if len(shares) == world:  # else the epoch's metrics count from the resume on
                self.epoch_outputs = [tuple(shares[rank])]
            self.epoch_lr = so_far["lr"]

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


def process_rank(trainer: pl.Trainer | None) -> tuple[int, int]:
    """(this process's rank, the number of processes) of a data-parallel run; (0, 1) outside one."""
    return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)


def by_process(trainer: pl.Trainer | None, tensor: torch.Tensor) -> list[torch.Tensor]:
    """`tensor` as each process of a data-parallel run holds it, by rank, on the CPU: every process
    calls this at the same point (a checkpoint's), and lengths along the first dimension may differ."""
    if process_rank(trainer)[1] == 1:
        return [tensor.cpu()]
    strategy = trainer.strategy
    local = tensor.to(strategy.root_device)  # NCCL gathers device tensors only
    lengths = strategy.all_gather(torch.tensor([len(local)], device=local.device)).view(-1).tolist()
    padded = local.new_zeros((max(lengths), *local.shape[1:]))
    padded[: len(local)] = local
    every = strategy.all_gather(padded)
    return [every[rank, :n].cpu().clone() for rank, n in enumerate(lengths)]  # not views: saved alone
