"""Training speed, side by side in one run on this machine (CPU here; the GPU figures of issue 9
need a GPU):

(a) data path: the classic DataLoader doing per-image PIL transforms (RandomCrop with padding,
    RandomHorizontalFlip, ToTensor, Normalize) versus the project's path (normalised tensors in
    memory, crop and flip on whole batches), same net, same batch size, same bare training loop;
(b) overhead: the real train stage (Lightning + MLflow + checkpoints + model logging, a fresh
    process) versus a bare PyTorch loop training the same net with the same recipe, both timed
    end to end for the same epochs, and per epoch without start-up (E and E+K epochs).

    python bench/speed.py                                            # digits
    python bench/speed.py --data mnist --mirror ../shared/datasets/mnist --epochs 1 --extra 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from stage import ROOT, prepare, train_seconds  # bench/stage.py: python puts bench/ on sys.path

from reprovision.config import compose, validate
from reprovision.data.augment import flip_crop
from reprovision.files import load_arrays, read_json
from reprovision.models.nets import build_net, init_weights


def net_and_optimizer(cfg, shape: list[int], classes: int):
    torch.manual_seed(cfg.seed)
    model = dataclasses.asdict(cfg.model)
    net = build_net(model.pop("name"), shape, classes, **{k: v for k, v in model.items() if k != "init"})
    init_weights(net, cfg.model.init)
    return net, torch.optim.Adam(net.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)


def bare_epochs(cfg, batches, shape, classes: int, epochs: int) -> float:
    """Seconds for `epochs` of a bare loop over `batches()` (an iterable of (x, y) per epoch)."""
    net, optimizer = net_and_optimizer(cfg, shape, classes)
    start = time.perf_counter()
    for _ in range(epochs):
        net.train()
        for x, y in batches():
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(x), y).backward()
            optimizer.step()
    return time.perf_counter() - start


def project_batches(x: torch.Tensor, y: torch.Tensor, batch: int, padding: int, flip: bool):
    def epoch():
        order = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            xb = x[idx]
            yield (flip_crop(xb, padding, flip) if padding or flip else xb), y[idx]

    return epoch


def classic_batches(raw: np.ndarray, y: np.ndarray, stats: dict, batch: int, padding: int):
    """torchvision transforms on PIL images, one image at a time, through a DataLoader."""
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    steps = [transforms.RandomCrop(raw.shape[-1], padding=padding)] if padding else []
    pipeline = transforms.Compose(
        [
            *steps,
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(stats["mean"], stats["std"]),
        ]
    )

    class Images(Dataset):
        def __len__(self):
            return len(raw)

        def __getitem__(self, i):
            img = raw[i]
            pil = Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0))
            return pipeline(pil), int(y[i])

    loader = DataLoader(Images(), batch_size=batch, shuffle=True, num_workers=0)
    return lambda: iter(loader)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="digits")
    parser.add_argument("--mirror", default=None)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--epochs", type=int, default=5, help="E")
    parser.add_argument("--extra", type=int, default=10, help="K: the longer runs take E+K epochs")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    overrides = [f"data={args.data}", f"model={args.model}", "trainer.accelerator=cpu"]
    overrides += [f"data.mirror={Path(args.mirror).resolve()}"] if args.mirror else []
    cfg = validate(compose(ROOT / "conf", overrides))
    padding, batch = cfg.data.crop_padding, cfg.data.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prepare(work, overrides)
        stats = read_json(work / "normalised" / "stats.json")
        train = load_arrays(work / "normalised" / "train.npz")
        raw = load_arrays(work / "split" / "train.npz")
        x, y = torch.from_numpy(train["x"]), torch.from_numpy(train["y"])
        shape, classes, n = list(x.shape[1:]), len(stats["classes"]), len(x)

        # (a) one epoch each, same net and loop; the classic path augments (crop if configured, flip).
        project = bare_epochs(cfg, project_batches(x, y, batch, padding, True), shape, classes, 1)
        classic = bare_epochs(cfg, classic_batches(raw["x"], raw["y"], stats, batch, padding), shape, classes, 1)

        # (b) the stage versus the bare loop with the stage's own augmentation settings.
        loop = project_batches(x, y, batch, padding, cfg.data.flip)
        bare_short = bare_epochs(cfg, loop, shape, classes, args.epochs)
        bare_long = bare_epochs(cfg, loop, shape, classes, args.epochs + args.extra)
        stage_short = train_seconds(work, overrides, args.epochs, "short")
        stage_long = train_seconds(work, overrides, args.epochs + args.extra, "long")

    bare_epoch = (bare_long - bare_short) / args.extra
    stage_epoch = (stage_long - stage_short) / args.extra
    result = {
        "what": f"{args.data} ({n} training images, {'x'.join(map(str, shape))}), model {args.model}, batch {batch}",
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, no GPU",
        "data_path": {
            "classic_images_per_s": n / classic,
            "project_images_per_s": n / project,
            "ratio": classic / project,
        },
        "overhead": {
            "epochs": args.epochs,
            "bare_loop_s": bare_short,
            "train_stage_s": stage_short,
            "ratio_end_to_end": stage_short / bare_short,
            "bare_epoch_s": bare_epoch,
            "stage_epoch_s": stage_epoch,
            "ratio_per_epoch": stage_epoch / bare_epoch,
        },
    }
    d, o = result["data_path"], result["overhead"]
    table = [
        "| measure | classic / bare | project / stage | ratio |",
        "|---|---|---|---|",
        f"| (a) images/s, one epoch | {d['classic_images_per_s']:.0f} | {d['project_images_per_s']:.0f} | "
        f"{d['ratio']:.2f}x faster |",
        f"| (b) {o['epochs']} epochs end to end, s | {o['bare_loop_s']:.2f} | {o['train_stage_s']:.2f} | "
        f"{o['ratio_end_to_end']:.2f}x |",
        f"| (b) one epoch, start-up excluded, s | {o['bare_epoch_s']:.3f} | {o['stage_epoch_s']:.3f} | "
        f"{o['ratio_per_epoch']:.2f}x |",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"speed-{args.data}.json").write_text(json.dumps(result, indent=2) + "\n")
    header = f"{result['what']}; {result['machine']}\n\n"
    (args.out / f"speed-{args.data}.md").write_text(header + "\n".join(table) + "\n")
    print(header + "\n".join(table))


if __name__ == "__main__":
    main()
