"""Training speed, side by side in one run on this machine (a GPU if there is one, else the CPU):

(a) data path: the classic DataLoader doing per-image PIL transforms (RandomCrop with padding,
    RandomHorizontalFlip, ToTensor, Normalize; `--workers` processes, pinned memory on a GPU)
    versus the project's (the normalised split on the device, crop and flip on whole batches
    there), same net, batch size and recipe, in the same bare loop: training images/s;
(b) overhead: the real train stage (Lightning + MLflow + checkpoints, a fresh process, as
    `dvc repro` runs it) versus a bare PyTorch loop with the same net and recipe (optimizer,
    schedule, precision, channels_last, compile, augmentation, a validation pass per epoch),
    for the same epochs, each in a fresh process so neither finds the device warm. The
    stage's training time is its fit loop less compiling (its timing.json); start-up
    (imports, data, MLflow run) and compiling are reported apart.

Each measurement is repeated (`--repeat`, the bare loop and the stage taking turns) and the
fastest kept: on a shared machine the noise only ever adds time.

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
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from stage import ROOT, prepare, run_stages  # bench/stage.py: python puts bench/ on sys.path

from reprovision.config import compose, validate
from reprovision.data.augment import flip_crop
from reprovision.files import load_arrays, read_json
from reprovision.models.nets import build_net, init_weights
from reprovision.models.system import OPTIMIZERS, lr_factor
from reprovision.stages.train import compile_seconds

AUTOCAST = {"32": None, "bf16-mixed": torch.bfloat16}


class BareLoop:
    """The recipe of `cfg` as a plain PyTorch loop: what the train stage runs, minus Lightning,
    MLflow and checkpoints."""

    def __init__(self, cfg, shape: list[int], classes: int, steps_per_epoch: int, device: torch.device) -> None:
        if cfg.trainer.precision not in AUTOCAST:
            raise SystemExit(f"bench: trainer.precision={cfg.trainer.precision} is not supported here; use 32 or bf16")
        torch.manual_seed(cfg.seed)
        model = dataclasses.asdict(cfg.model)
        net = build_net(model.pop("name"), shape, classes, **{k: v for k, v in model.items() if k != "init"})
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
                correct += (self.net(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum()
        return correct.item() / len(x)


def sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def project_batches(x: torch.Tensor, y: torch.Tensor, batch: int, padding: int, flip: bool):
    """The project's path: the split already on the device; one index and one gather a batch."""
    order = torch.randperm(len(x), device=x.device)
    for i in range(0, len(x), batch):
        idx = order[i : i + batch]
        xb = x[idx]
        yield (flip_crop(xb, padding, flip) if padding or flip else xb), y[idx]


def classic_loader(raw: np.ndarray, y: np.ndarray, stats: dict, batch: int, padding: int, flip: bool, workers: int):
    """torchvision transforms on PIL images, one image at a time, through a DataLoader."""
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    steps = [transforms.RandomCrop(raw.shape[-1], padding=padding)] if padding else []
    steps += [transforms.RandomHorizontalFlip()] if flip else []
    pipeline = transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize(stats["mean"], stats["std"])])

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
    """The normalised train and val splits on `device`."""
    train, val = (load_arrays(work / "normalised" / f"{s}.npz") for s in ("train", "val"))
    return [torch.from_numpy(a[k]).to(device) for a in (train, val) for k in ("x", "y")]


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
    parser.add_argument("--bare-run", type=Path, help=argparse.SUPPRESS)  # internal: (b)'s bare loop in WORK
    args = parser.parse_args()

    overrides = [f"data={args.data}", f"model={args.model}", *args.set, f"trainer.max_epochs={args.epochs}"]
    overrides += [f"data.mirror={Path(args.mirror).resolve()}"] if args.mirror else []
    cfg = validate(compose(ROOT / "conf", overrides))
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.trainer.accelerator != "cpu" else "cpu")
    d = cfg.data
    if args.bare_run:
        classes = len(read_json(args.bare_run / "normalised" / "stats.json")["classes"])
        print(json.dumps(bare_run(cfg, args.bare_run, device, classes)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prepare(work, overrides)
        stats = read_json(work / "normalised" / "stats.json")
        raw = load_arrays(work / "split" / "train.npz")
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

        # (b) the bare loop and the stage, each a fresh process, taking turns; the fastest of each.
        del loop, x, y  # free the device for the processes to come
        bare, stage = {"seconds": float("inf")}, {"train_s": float("inf")}
        for i in range(args.repeat):
            proc = subprocess.run(
                [sys.executable, __file__, *sys.argv[1:], "--bare-run", str(work)],
                check=True,
                capture_output=True,
                text=True,
            )
            bare = min(bare, json.loads(proc.stdout.splitlines()[-1]), key=lambda r: r["seconds"])
            stage = min(stage, run_stages(work, overrides, f"stage-{i}"), key=lambda r: r["train_s"])

    name = args.name or d.name
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
            "stage_train_s": stage["train_s"],
            "ratio": stage["train_s"] / bare["seconds"],
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
