"""train stage: fit the configured net with Lightning, tracked in a new MLflow run."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import shutil
import warnings
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from reprovision import tracking
from reprovision.config import Config, load_config
from reprovision.data.datamodule import NormalisedDataModule
from reprovision.errors import StageFailed
from reprovision.files import atomic_dir, atomic_file, read_json, write_json
from reprovision.models.system import ImageClassifier

CURVE_COLUMNS = ("epoch", "train/loss", "train/acc", "val/loss", "val/acc", "train/lr")
PRECISION = {"32": "32-true", "bf16-mixed": "bf16-mixed", "16-mixed": "16-mixed"}


class EpochHistory(Callback):
    """One row of epoch-level metrics per training epoch, for the curves file."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch + 1}
        row.update({k: float(metrics[k]) for k in CURVE_COLUMNS[1:] if k in metrics})
        self.rows.append(row)


def write_curves(path: Path, rows: list[dict[str, float]]) -> None:
    with atomic_file(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CURVE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def train(
    cfg: Config,
    params_path: Path,
    data_dir: Path,
    split_summary: Path,
    checkpoint_dir: Path,
    out_dir: Path,
    metrics_path: Path,
    curves_path: Path,
) -> dict:
    """Train; write the best checkpoint and run id to `out_dir`, summary metrics, curves."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = NormalisedDataModule(data_dir, cfg.data.batch_size, cfg.data.num_workers)
    stats = datamodule.stats
    module = ImageClassifier(
        net=dataclasses.asdict(cfg.model),
        optim=dataclasses.asdict(cfg.optim),
        classes=stats["classes"],
        image_shape=stats["image_shape"],
        mean=stats["mean"],
        std=stats["std"],
    )
    logger = tracking.lightning_logger(cfg, str(data_dir))
    tracking.log_config(logger, params_path)
    tracking.log_dataset(logger, read_json(split_summary), split_summary)
    # The checkpoint directory persists across runs (DVC `persist`); names are fixed and
    # overwritten, so a rerun never picks up `best-v1.ckpt` from an earlier config.
    checkpoint = ModelCheckpoint(
        dirpath=checkpoint_dir,
        filename="best",
        monitor="val/acc",
        mode="max",
        save_last=True,
        enable_version_counter=False,
    )
    history = EpochHistory()
    trainer = pl.Trainer(
        max_epochs=cfg.trainer.max_epochs,
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        precision=PRECISION[cfg.trainer.precision],
        deterministic=cfg.trainer.deterministic,
        logger=logger,
        callbacks=[checkpoint, history],
        enable_progress_bar=cfg.trainer.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        default_root_dir=checkpoint_dir,
    )
    with warnings.catch_warnings():
        # In-memory tensors: DataLoader worker processes would only add start-up time.
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(module, datamodule=datamodule)
    if trainer.interrupted or trainer.received_sigterm or trainer.current_epoch < cfg.trainer.max_epochs:
        raise StageFailed(
            f"training stopped at epoch {trainer.current_epoch} of {cfg.trainer.max_epochs}; rerun the stage"
        )

    best = max(history.rows, key=lambda r: r["val/acc"])  # first epoch with the best val/acc
    summary = {k: best[k] for k in ("val/acc", "val/loss", "train/acc", "train/loss")}
    summary.update({"best_epoch": best["epoch"], "epochs": len(history.rows)})
    run_info = {
        "run_id": logger.run_id,
        "experiment_id": logger.experiment_id,
        "tracking_uri": tracking.tracking_uri(cfg),
    }
    with atomic_dir(out_dir) as tmp:
        shutil.copyfile(checkpoint.best_model_path, tmp / "model.ckpt")
        write_json(tmp / "run.json", run_info)
    write_json(metrics_path, summary)
    write_curves(curves_path, history.rows)
    run = tracking.PipelineRun(run_info)
    run.log_metrics({f"best/{k}": v for k, v in summary.items()})
    run.log_artifact(curves_path, "metrics")
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="resolved config")
    parser.add_argument("--data", required=True, type=Path, help="normalised data directory")
    parser.add_argument("--summary", required=True, type=Path, help="the split stage's summary.json")
    parser.add_argument(
        "--checkpoints",
        required=True,
        type=Path,
        help="directory for best/last Lightning checkpoints (kept across runs)",
    )
    parser.add_argument("--out", required=True, type=Path, help="model directory to write (model.ckpt, run.json)")
    parser.add_argument("--metrics", required=True, type=Path, help="summary metrics JSON")
    parser.add_argument("--curves", required=True, type=Path, help="per-epoch curves CSV")


def run(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)
    summary = train(
        cfg, Path(args.params), args.data, args.summary, args.checkpoints, args.out, args.metrics, args.curves
    )
    print(
        f"train: best val/acc {summary['val/acc']:.4f} at epoch {summary['best_epoch']} "
        f"of {summary['epochs']} -> {args.out}"
    )
