"""Training throughput of the two batch paths, side by side in one run on this machine: the
splits on the training device (`data.loader=device`) against each batch read from the shards
(`data.loader=dataloader`, with 0 and `--workers` reader processes), through the real train
stage (a fresh process each, as `dvc repro` runs it), on the same data and recipe.

    python bench/streaming.py --data ../shared/datasets/cifar10-jpeg/cifar10-jpeg.tar.gz

Each configuration runs `--repeat` times, taking turns; the fastest counts (noise on a shared
machine only ever adds time). Throughput is timing.json's training images per second of the fit
loop (epochs, validation, checkpoints; start-up apart). Writes bench/results/streaming.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from stage import ROOT, prepare, run_stages  # bench/stage.py: python puts bench/ on sys.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="an image folder or its archive (train/<class>/...)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="reader processes of the second shard run")
    parser.add_argument("--set", nargs="*", default=[], help="more config overrides")
    args = parser.parse_args()
    overrides = ["data=imagefolder", f"data.path={args.data.resolve()}", f"data.image_size={args.image_size}"]
    overrides += [f"trainer.max_epochs={args.epochs}", "trainer.progress_bar=false", *args.set]
    paths = {
        "device": ["data.loader=device"],
        "shards, 0 workers": ["data.loader=dataloader", "data.num_workers=0"],
        f"shards, {args.workers} workers": ["data.loader=dataloader", f"data.num_workers={args.workers}"],
    }
    best: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="streaming-") as tmp:
        work = Path(tmp)
        summary = prepare(work, overrides)
        for i in range(args.repeat):
            for name, extra in paths.items():
                found = run_stages(work, [*overrides, *extra], f"{name.replace(' ', '').replace(',', '-')}-{i}")
                if name not in best or found["train_images_per_s"] > best[name]["train_images_per_s"]:
                    best[name] = found
    device = best["device"]["train_images_per_s"]
    result = {
        "data": f"{args.data.name}: {summary['sizes']['train']} training images, {args.image_size}px",
        "epochs": args.epochs,
        "repeat": args.repeat,
        "images_per_s": {name: r["train_images_per_s"] for name, r in best.items()},
        "ratio_to_device": {name: r["train_images_per_s"] / device for name, r in best.items()},
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "streaming.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
