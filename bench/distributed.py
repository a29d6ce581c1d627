"""Data-parallel scaling on this machine: the train stage on 1 process versus N (Lightning DDP).

Each configuration runs the real train stage (`python -m reprovision train`, MLflow and
checkpoints included) twice, for E and E+K epochs; the difference divided by K is the time of one
epoch without start-up, so images/s = training images / that time. Scaling efficiency is
images/s on N processes / (N x images/s on one). Writes a JSON and a Markdown table.

    python bench/distributed.py                                   # digits, 1 vs 2 processes
    python bench/distributed.py --data mnist --mirror ../shared/datasets/mnist
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch
from stage import ROOT, prepare, train_seconds  # bench/stage.py: python puts bench/ on sys.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="digits")
    parser.add_argument("--mirror", default=None, help="local directory or URL holding the dataset's files")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=1, help="E: epochs of the shorter run")
    parser.add_argument("--extra", type=int, default=2, help="K: extra epochs of the longer run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    overrides = [f"data={args.data}", f"model={args.model}", "trainer.accelerator=cpu"]
    overrides += [f"data.mirror={Path(args.mirror).resolve()}"] if args.mirror else []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        n_train = prepare(work, overrides)["sizes"]["train"]
        for n in args.processes:
            parallel = [f"trainer.devices={n}"] + (["trainer.strategy=ddp"] if n > 1 else [])
            short = train_seconds(work, overrides + parallel, args.epochs, f"{n}-short")
            long = train_seconds(work, overrides + parallel, args.epochs + args.extra, f"{n}-long")
            epoch = (long - short) / args.extra
            rows.append({"processes": n, "epoch_s": epoch, "images_per_s": n_train / epoch, "startup_s": short - epoch})
    base = rows[0]["images_per_s"] / rows[0]["processes"]
    for row in rows:
        row["efficiency"] = row["images_per_s"] / (row["processes"] * base)

    result = {
        "what": f"train stage, {args.data} ({n_train} training images), model {args.model}, batch 64 global",
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, no GPU",
        "rows": rows,
    }
    table = ["| processes | s / epoch | images/s | scaling efficiency | start-up s |", "|---|---|---|---|---|"]
    for r in rows:
        cells = (r["processes"], f"{r['epoch_s']:.2f}", f"{r['images_per_s']:.0f}", f"{r['efficiency']:.2f}")
        table.append("| " + " | ".join(map(str, cells)) + f" | {r['startup_s']:.1f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"distributed-{args.data}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"distributed-{args.data}.md").write_text(
        f"{result['what']}; {result['machine']}\n\n" + "\n".join(table) + "\n"
    )
    print(result["what"], "|", result["machine"])
    print("\n".join(table))


if __name__ == "__main__":
    main()
