"""What portable numerics cost: the real train stage, side by side in one run, with
`numerics.portable=true` (vector kernels capped at AVX2, MKL's vendor-independent code path, 2
threads) and `false` (the machine's fastest kernels, all its cores), alternating, on the default
digits pipeline and on MNIST with `experiment=mnist_cnn`; and whether each mode gives the same
model bytes every time.

    python bench/numerics.py --mnist ../shared/datasets/mnist   # both datasets (MNIST's four .gz files)
    python bench/numerics.py --repeats 3                        # digits alone

Writes bench/results/numerics.json and .md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import tempfile
from pathlib import Path

from stage import ROOT, prepare, run_stages  # bench/stage.py: python puts bench/ on sys.path

MODES = {"portable": ["numerics.portable=true"], "native": ["numerics.portable=false"]}


def bench(name: str, overrides: list[str], repeats: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"numerics-{name}-") as tmp:
        work = Path(tmp)
        prepare(work, overrides)
        runs = {mode: [] for mode in MODES}
        for i in range(repeats):  # alternating: a slower minute of the machine hits both modes
            for mode, extra in MODES.items():
                timing = run_stages(work, [*overrides, *extra], f"{mode}-{i}")
                model = (work / f"{mode}-{i}" / "models" / "model.ckpt").read_bytes()
                runs[mode].append({**timing, "model_md5": hashlib.md5(model).hexdigest()})
    result = {"overrides": overrides}
    for mode, rows in runs.items():
        result[mode] = {
            "train_s": statistics.median(r["train_s"] for r in rows),
            "process_s": statistics.median(r["process_s"] for r in rows),
            "same_bytes_every_run": len({r["model_md5"] for r in rows}) == 1,
            "model_md5": rows[0]["model_md5"],
        }
    result["train_ratio"] = result["portable"]["train_s"] / result["native"]["train_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mnist", type=Path, help="a directory with MNIST's four .gz files")
    args = parser.parse_args()
    cases = {"digits": []}
    if args.mnist:
        cases["mnist_cnn"] = ["experiment=mnist_cnn", f"data.mirror={args.mnist.resolve()}"]
    results = {name: bench(name, overrides, args.repeats) for name, overrides in cases.items()}
    machine = {"cpu": platform.processor() or platform.machine(), "repeats": args.repeats}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "numerics.json").write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")
    header = "| case | portable train s | native train s | portable / native | same bytes each run (portable, native) |"
    lines = [header, "|---|---|---|---|---|"]
    for name, r in results.items():
        p, n = r["portable"], r["native"]
        lines.append(f"| {name} | {p['train_s']:.1f} | {n['train_s']:.1f} | {r['train_ratio']:.2f} | "
                     f"{p['same_bytes_every_run']}, {n['same_bytes_every_run']} |")  # fmt: skip
    (out / "numerics.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
