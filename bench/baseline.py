"""What the evaluate stage's baseline costs: scikit-learn's logistic regression and the majority
class fitted as evaluate fits them (at most `evaluate.baseline_rows` training rows, 100 lbfgs
steps), against the same fit on the whole training split, side by side on MNIST and the CIFAR-10
JPEG copy: seconds and test accuracy.

    cd bench && python baseline.py --mnist ../../shared/datasets/mnist \\
        --cifar10 ../../shared/datasets/cifar10-jpeg/cifar10-jpeg.tar.gz

Writes bench/results/baseline.json and .md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from stage import ROOT, prepare  # bench/stage.py: python puts bench/ on sys.path

from reprovision.baseline import baselines


def bench(overrides: list[str], rows: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="baseline-") as tmp:
        work = Path(tmp)
        summary = prepare(work, overrides)
        found = {"train_rows": summary["sizes"]["train"]}
        for name, limit in (("bounded", rows), ("whole split", summary["sizes"]["train"])):
            start = time.perf_counter()
            metrics = baselines(work / "split", work / "normalised", seed=42, max_rows=limit)
            found[name] = {"rows": min(limit, found["train_rows"]), "seconds": time.perf_counter() - start,
                           "test_acc": metrics["baseline/logistic/test/acc"]}  # fmt: skip
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", type=Path, required=True, help="a directory with MNIST's four .gz files")
    parser.add_argument("--cifar10", type=Path, required=True, help="the CIFAR-10 JPEG archive (an image folder)")
    parser.add_argument("--rows", type=int, default=10_000, help="evaluate.baseline_rows")
    args = parser.parse_args()
    cases = {
        "mnist": ["data=mnist", f"data.mirror={args.mnist.resolve()}"],
        "cifar10-jpeg": ["data=imagefolder", f"data.path={args.cifar10.resolve()}"],
    }
    results = {name: bench(overrides, args.rows) for name, overrides in cases.items()}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "baseline.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["| data | fit | training rows | seconds | logistic test acc |", "|---|---|---|---|---|"]
    for name, r in results.items():
        for fit in ("bounded", "whole split"):
            lines.append(
                f"| {name} | {fit} | {r[fit]['rows']:,} | {r[fit]['seconds']:.1f} | {r[fit]['test_acc']:.4f} |"
            )
    (out / "baseline.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
