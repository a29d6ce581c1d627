"""(c) Time to a target test accuracy through the real pipeline: the train and evaluate stages as
fresh processes (Lightning, MLflow, checkpoints), on CIFAR-10 (the JPEG copy in
../shared/datasets) and MNIST with `fast_cnn` (experiments cifar10_fast and mnist_fast).

Each epoch budget is its own run (the schedule spans the whole run). Per run: test/acc, the
training time (the fit loop, validation and checkpoints included, less compiling), compile time
and start-up time (imports, data onto the device, MLflow run), each apart. Compiled kernels are
cached in a fresh directory: the first run of a case compiles cold, the later ones read the cache.
The answer per case: the shortest training time whose test/acc meets the target.

    python bench/time_to_accuracy.py                              # on a GPU: both cases
    python bench/time_to_accuracy.py --cases mnist --epochs 1 2 \\
        --set trainer.precision=32 trainer.compile=false trainer.channels_last=false   # a CPU check

Writes bench/results/time-to-accuracy.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import torch
from stage import ROOT, prepare, run_stages  # bench/stage.py: python puts bench/ on sys.path

DATASETS = ROOT.parent / "shared" / "datasets"
CASES = {  # the first bar (target) and aim, as test accuracy
    "cifar10": {
        "overrides": ["experiment=cifar10_fast", f"data.path={DATASETS / 'cifar10-jpeg' / 'cifar10-jpeg.tar.gz'}"],
        "target": 0.89,
        "aim": 0.905,
        "epochs": [8, 10, 12],
    },
    "mnist": {
        "overrides": ["experiment=mnist_fast", f"data.mirror={DATASETS / 'mnist'}"],
        "target": 0.994,
        "aim": 0.995,
        "epochs": [2, 3, 4],
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--epochs", type=int, nargs="+", help="epoch budgets to try (default: per case)")
    parser.add_argument("--set", nargs="*", default=[], help="more config overrides for every run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tmp) / "compile-cache")  # cold for each case's first run
        for case in args.cases:
            spec = CASES[case]
            work = Path(tmp) / case
            overrides = [*spec["overrides"], *args.set]
            prepare(work, overrides)
            for epochs in args.epochs or spec["epochs"]:
                run = run_stages(work, [*overrides, f"trainer.max_epochs={epochs}"], f"{epochs}ep", evaluate=True)
                row = {"case": case, "epochs": epochs, "target": spec["target"], "aim": spec["aim"], **run}
                results.append(row)
                print(
                    f"{case} {epochs} epochs: test/acc {run['test/acc']:.4f}, training {run['train_s']:.2f} s, "
                    f"compile {run['compile_s']:.1f} s, start-up {run['startup_s']:.1f} s"
                )

    machine = torch.cuda.get_device_name() if torch.cuda.is_available() else f"{platform.machine()} CPU"
    table = [
        "| case | epochs | test/acc | training s | compile s | start-up s | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        verdict = "aim met" if r["test/acc"] >= r["aim"] else "met" if r["test/acc"] >= r["target"] else "missed"
        table.append(
            f"| {r['case']} | {r['epochs']} | {r['test/acc']:.4f} | {r['train_s']:.2f} | {r['compile_s']:.1f} | "
            f"{r['startup_s']:.1f} | {r['target']:.3f}: {verdict} |"
        )
    summary = {}
    for case in args.cases:
        met = [r for r in results if r["case"] == case and r["test/acc"] >= r["target"]]
        best = min(met, key=lambda r: r["train_s"]) if met else None
        summary[case] = {"epochs": best["epochs"], "train_s": best["train_s"]} if best else None
        table.append(
            f"\n{case}: target {CASES[case]['target']:.3f} "
            + (f"reached in {best['train_s']:.2f} s of training ({best['epochs']} epochs)" if best else "not reached")
        )
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine, "overrides": args.set, "runs": results, "fastest_to_target": summary}
    (args.out / "time-to-accuracy.json").write_text(json.dumps(report, indent=2) + "\n")
    text = f"{machine}; extra overrides: {' '.join(args.set) or 'none'}\n\n" + "\n".join(table) + "\n"
    (args.out / "time-to-accuracy.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
