"""Training speed, side by side in one run on this machine (a GPU if there is one, else the CPU):

(a) data path: the classic DataLoader doing per-image PIL transforms (RandomCrop with padding,
    RandomHorizontalFlip, ToTensor, Normalize; `--workers` processes, pinned memory on a GPU)
    versus the project's (the uint8 split on the device, each batch normalised, cropped and
    flipped there), same net, batch size and recipe, in the same bare loop: training images/s;
(b) overhead: the real train stage (Lightning + MLflow + checkpoints, a fresh process, as
    `dvc repro` runs it) versus a bare PyTorch loop with the same net and recipe (optimizer,
    schedule, precision, deterministic kernels, channels_last, compile, augmentation, a
    validation pass per epoch), for the same epochs, each in a fresh process so neither finds
    the device warm. Between them, the bare loop through Lightning alone (Trainer.fit with
    nothing of the stage's): how much of the gap is Lightning's own. The stage's training time
    is its fit loop less compiling (its timing.json); start-up (imports, data, MLflow run) and
    compiling are reported apart.

Each measurement is repeated (`--repeat`, the three taking turns) and the fastest kept: on a
shared machine the noise only ever adds time.

    python bench/speed.py                                                    # digits, cnn
    python bench/speed.py --data mnist --mirror ../shared/datasets/mnist --epochs 2
    python bench/speed.py --set experiment=cifar10_fast --epochs 4           # on a GPU

Writes bench/results/speed-<name>.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from stage import ROOT, prepare, run_stages  # bench/stage.py: python puts bench/ on sys.path

from reprovision.config import compose, validate
from reprovision.data.augment import flip_crop
from reprovision.data.shards import load_split
from reprovision.files import read_json
from reprovision.models.nets import build_net, init_weights
from reprovision.models.optimizers import OPTIMIZERS, lr_factor
from reprovision.training.build import PRECISION
from reprovision.training.timing import Stopwatch, compile_seconds

AUTOCAST = {"32": None, "bf16-mixed": torch.bfloat16}


class BareLoop:
    """The recipe of `cfg` as a plain PyTorch loop: what the train stage runs, minus Lightning,
    MLflow and checkpoints."""

    def __init__(self, cfg, shape: list[int], classes: int, steps_per_epoch: int, device: torch.device) -> None:
        if cfg.trainer.precision not in AUTOCAST:
            raise SystemExit(f"bench: trainer.precision={cfg.trainer.precision} is not supported here; use 32 or bf16")
        torch.manual_seed(cfg.seed)
        if cfg.trainer.deterministic:
            # As Trainer(deterministic=True) sets it for the stage: it picks the kernels, so it is
            # part of the recipe, not of the stage's overhead.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        model = dataclasses.asdict(cfg.model)
        inputs = {"kind": "image", "shape": shape}
        net = build_net(model.pop("name"), inputs, classes, **{k: v for k, v in model.items() if k != "init"})
        init_weights(net, cfg.model.init)
        self.net = net.to(device)
        if cfg.trainer.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if cfg.trainer.compile:
            self.net.compile()
        optim = dataclasses.asdict(cfg.optim)
        self.optimizer = OPTIMIZERS[optim["name"]](self.net.parameters(), optim, True)
        total = steps_per_epoch * cfg.trainer.max_epochs
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, steps_per_epoch, total, optim)
        )
        self.cfg, self.device = cfg, device
        dtype = AUTOCAST[cfg.trainer.precision]
        self.autocast = (lambda: torch.autocast(device.type, dtype)) if dtype else contextlib.nullcontext

    def train_epoch(self, batches) -> None:
        self.net.train()
        for x, y in batches:
            with self.autocast():
                loss = F.cross_entropy(self.net(x), y, label_smoothing=self.cfg.trainer.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.trainer.gradient_clip:
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.trainer.gradient_clip)
            self.optimizer.step()
            self.schedule.step()

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
        self.net.eval()
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for i in range(0, len(x), batch):
            with self.autocast():
                correct += (self.net(normalised(x, x[i : i + batch])).argmax(1) == y[i : i + batch]).sum()
        return correct.item() / len(x)


def sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def project_batches(x: torch.Tensor, y: torch.Tensor, batch: int, padding: int = 0, flip: bool = False):
    """The project's path: the uint8 split already on the device; one index, one gather and the
    normalisation a batch (`x` carries its statistics, see `splits`), then crop and flip."""
    order = torch.randperm(len(x), device=x.device)
    for i in range(0, len(x), batch):
        idx = order[i : i + batch]
        xb = normalised(x, x[idx])
        yield (flip_crop(xb, padding, flip) if padding or flip else xb), y[idx]


def normalised(split: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
    """A batch of `split` normalised as the net's preprocessing does it."""
    mean, std = split.stats
    return (raw.float() / 255.0 - mean) / std


def classic_loader(raw: np.ndarray, y: np.ndarray, stats: dict, batch: int, padding: int, flip: bool, workers: int):
    """torchvision transforms on PIL images, one image at a time, through a DataLoader."""
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    steps = [transforms.RandomCrop(raw.shape[-1], padding=padding)] if padding else []
    steps += [transforms.RandomHorizontalFlip()] if flip else []
    pipeline = transforms.Compose(
        [*steps, transforms.ToTensor(), transforms.Normalize(stats["inputs"]["mean"], stats["inputs"]["std"])]
    )

    class Images(Dataset):
        def __len__(self):
            return len(raw)

        def __getitem__(self, i):
            img = raw[i]
            pil = Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0))
            return pipeline(pil), int(y[i])

    return DataLoader(
        Images(),
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
    )


def splits(work: Path, device: torch.device):
    """The uint8 train and val splits on `device`, each image tensor carrying the training
    split's mean and std (`.stats`, shaped to broadcast over a batch) for `normalised`."""
    inputs = read_json(work / "normalised" / "stats.json")["inputs"]
    stats = tuple(torch.tensor(inputs[k], device=device).view(1, -1, 1, 1) for k in ("mean", "std"))
    train, val = (load_split(work / "split", s) for s in ("train", "val"))
    x, y, xv, yv = (torch.from_numpy(a[k]).to(device) for a in (train, val) for k in ("x", "y"))
    x.stats = xv.stats = stats
    return x, y, xv, yv


def bare_run(cfg, work: Path, device: torch.device, classes: int) -> dict:
    """(b)'s bare loop: the stage's epochs from a fresh net, validating every epoch; seconds
    less compiling. Run in a fresh process, as the stage is, so neither starts warm."""
    x, y, xv, yv = splits(work, device)
    d = cfg.data
    loop = BareLoop(cfg, list(x.shape[1:]), classes, -(-len(x) // d.batch_size), device)
    compiled, start = compile_seconds(), sync(device)
    for _ in range(cfg.trainer.max_epochs):
        loop.train_epoch(project_batches(x, y, d.batch_size, d.crop_padding, d.flip))
        val_acc = loop.accuracy(xv, yv, d.eval_batch_size)
    return {"seconds": sync(device) - start - (compile_seconds() - compiled), "val_acc": val_acc}


class Batches:
    """`project_batches` as a loader Lightning can iterate once per epoch."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch: int, padding: int = 0, flip: bool = False) -> None:
        self.args = (x, y, batch, padding, flip)

    def __len__(self) -> int:
        return -(-len(self.args[0]) // self.args[2])

    def __iter__(self):
        return project_batches(*self.args)


class LightningAlone(pl.LightningModule):
    """The bare loop's net, optimizer and schedule through Lightning's Trainer.fit, with nothing
    of the stage's: no metrics, logging, checkpoints, progress bar or callbacks of its own, and
    a validation pass that only counts right answers. What Lightning itself costs."""

    def __init__(self, loop: BareLoop) -> None:
        super().__init__()
        self.net, self.loop = loop.net, loop

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y, label_smoothing=self.loop.cfg.trainer.label_smoothing)

    def on_validation_epoch_start(self) -> None:
        self.correct = torch.zeros((), device=self.device, dtype=torch.long)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.correct += (self.net(x).argmax(1) == y).sum()

    def configure_optimizers(self):
        schedule = {"scheduler": self.loop.schedule, "interval": "step"}
        return {"optimizer": self.loop.optimizer, "lr_scheduler": schedule}


def lightning_run(cfg, work: Path, device: torch.device, classes: int) -> dict:
    """(b)'s Lightning-alone loop: the bare loop's epochs through Trainer.fit, timed as the
    stage times its fit loop (its Stopwatch callback), in a fresh process."""
    x, y, xv, yv = splits(work, device)
    d, t = cfg.data, cfg.trainer
    module = LightningAlone(BareLoop(cfg, list(x.shape[1:]), classes, -(-len(x) // d.batch_size), device))
    stopwatch = Stopwatch(time.perf_counter())
    trainer = pl.Trainer(
        max_epochs=t.max_epochs,
        accelerator=device.type,
        devices=1,
        precision=PRECISION[t.precision],
        deterministic=t.deterministic,
        gradient_clip_val=t.gradient_clip,
        logger=False,
        callbacks=[stopwatch],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, Batches(x, y, d.batch_size, d.crop_padding, d.flip), Batches(xv, yv, d.eval_batch_size))
    return {"seconds": stopwatch.seconds["train_s"], "val_acc": module.correct.item() / len(xv)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="digits")
    parser.add_argument("--mirror", default=None, help="local directory or URL holding the dataset's files")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--set", nargs="*", default=[], help="more config overrides, e.g. experiment=cifar10_fast")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the stage and of the bare loop in (b)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the fastest counts")
    parser.add_argument("--workers", type=int, default=8 if torch.cuda.is_available() else 0, help="classic path")
    parser.add_argument("--name", default=None, help="results file name (default: the dataset's)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--work", type=Path, help="a directory prepare() already filled (bench/gpu_check.py): reused")
    parser.add_argument("--bare-run", type=Path, help=argparse.SUPPRESS)  # internal: (b)'s bare loop in WORK
    parser.add_argument("--lightning-run", type=Path, help=argparse.SUPPRESS)  # internal: (b)'s Lightning alone
    args = parser.parse_args()

    overrides = [f"data={args.data}", f"model={args.model}", *args.set, f"trainer.max_epochs={args.epochs}"]
    overrides += [f"data.mirror={Path(args.mirror).resolve()}"] if args.mirror else []
    cfg = validate(compose(ROOT / "conf", overrides))
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.trainer.accelerator != "cpu" else "cpu")
    d = cfg.data
    for work, loop in ((args.bare_run, bare_run), (args.lightning_run, lightning_run)):
        if work:
            classes = len(read_json(work / "normalised" / "stats.json")["classes"])
            print(json.dumps(loop(cfg, work, device, classes)))
            return
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        if args.work is None:
            prepare(work, overrides)
        stats = read_json(work / "normalised" / "stats.json")
        raw = load_split(work / "split", "train")
        x, y, _, _ = splits(work, device)
        shape, classes, n = list(x.shape[1:]), len(stats["classes"]), len(x)
        steps = -(-n // d.batch_size)

        # (a) epochs of each path after a warm-up epoch (compiling, allocator, caches).
        loop = BareLoop(cfg, shape, classes, steps, device)
        loop.train_epoch(project_batches(x, y, d.batch_size, d.crop_padding, d.flip))
        classic_batches = classic_loader(raw["x"], raw["y"], stats, d.batch_size, d.crop_padding, d.flip, args.workers)
        project = classic = float("inf")
        for _ in range(args.repeat):
            start = sync(device)
            loop.train_epoch(project_batches(x, y, d.batch_size, d.crop_padding, d.flip))
            project = min(project, sync(device) - start)
            start = sync(device)
            loop.train_epoch(
                (xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)) for xb, yb in classic_batches
            )
            classic = min(classic, sync(device) - start)

        # (b) the bare loop, Lightning alone and the stage, each a fresh process, taking turns; the
        # fastest of each.
        del loop, x, y  # free the device for the processes to come

        def fresh(flag: str) -> dict:
            cmd = [sys.executable, __file__, *sys.argv[1:], flag, str(work)]
            return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])

        name = args.name or d.name
        bare, alone, stage = {"seconds": float("inf")}, {"seconds": float("inf")}, {"train_s": float("inf")}
        for i in range(args.repeat):
            bare = min(bare, fresh("--bare-run"), key=lambda r: r["seconds"])
            alone = min(alone, fresh("--lightning-run"), key=lambda r: r["seconds"])
            stage = min(stage, run_stages(work, overrides, f"stage-{name}-{i}"), key=lambda r: r["train_s"])

    result = {
        "what": f"{d.name} ({n} training images, {'x'.join(map(str, shape))}), model {cfg.model.name}, "
        f"batch {d.batch_size}, precision {cfg.trainer.precision}"
        + (", channels_last" if cfg.trainer.channels_last else "")
        + (", compiled" if cfg.trainer.compile else ""),
        "machine": torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"{platform.machine()} CPU, {torch.get_num_threads()} threads",
        "data_path": {
            "classic_workers": args.workers,
            "classic_images_per_s": n / classic,
            "project_images_per_s": n / project,
            "ratio": classic / project,
        },
        "repeat": args.repeat,
        "overhead": {
            "epochs": args.epochs,
            "bare_loop_s": bare["seconds"],
            "bare_val_acc": bare["val_acc"],
            "lightning_alone_s": alone["seconds"],
            "lightning_alone_ratio": alone["seconds"] / bare["seconds"],
            "stage_train_s": stage["train_s"],
            "ratio": stage["train_s"] / bare["seconds"],
            "stage_over_lightning_alone": stage["train_s"] / alone["seconds"],
            "stage_startup_s": stage["startup_s"],
            "stage_compile_s": stage["compile_s"],
            "stage_total_s": stage["total_s"],
            "stage_process_s": stage["process_s"],
        },
    }
    a, b = result["data_path"], result["overhead"]
    table = [
        "| measure | classic / bare loop | project / train stage | ratio |",
        "|---|---|---|---|",
        f"| (a) training images/s ({args.workers} workers for the classic path) | "
        f"{a['classic_images_per_s']:,.0f} | {a['project_images_per_s']:,.0f} | {a['ratio']:.2f}x faster |",
        f"| (b) {args.epochs} epochs of training, validation every epoch, s | {bare['seconds']:.2f} | "
        f"{stage['train_s']:.2f} | {b['ratio']:.2f}x |",
        f"| (b) the same through Lightning alone (Trainer.fit, nothing of the stage's), s | {bare['seconds']:.2f} | "
        f"{alone['seconds']:.2f} | {b['lightning_alone_ratio']:.2f}x (the stage: "
        f"{b['stage_over_lightning_alone']:.2f}x Lightning alone) |",
        f"| (b) the stage's start-up / compile / whole process, s | | {stage['startup_s']:.1f} / "
        f"{stage['compile_s']:.1f} / {stage['process_s']:.1f} | |",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"speed-{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    header = f"{result['what']}; {result['machine']}\n\n"
    (args.out / f"speed-{name}.md").write_text(header + "\n".join(table) + "\n")
    print(header + "\n".join(table))


if __name__ == "__main__":
    main()
