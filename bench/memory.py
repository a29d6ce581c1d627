"""Peak memory of every pipeline stage against the size of a user's image folder, for this
checkout and an earlier revision side by side in one run.

    python bench/memory.py --sizes 0.05 0.1 0.2 0.4 --baseline 4b7ccc6 --out bench/results/memory.json
    python bench/memory.py --sizes 0.1 1 4 --baseline 507aef7 --baseline-up-to 1

(an old path that holds every split several times over needs tens of GB at the larger sizes).

For each size (GB of decoded pixels) a folder of generated photos (smooth colour fields with
noise, JPEG, 128x128, four classes, a fifth held out as test) is written once; each code version
then runs its own dvc.yaml's stage commands on it, in order, in a project directory of its own,
each under `/usr/bin/time -f %M` (peak resident set, KiB). Training is a smoke run (two batches,
one epoch, an MLP): the data is loaded as in a full run, the minutes of training are not spent.
A stage that fails (killed for memory, say) is reported as such and the rest of that run skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SIDE = 128
CLASSES = ("a", "b", "c", "d")
STAGES = ("config", "download", "split", "normalise", "train", "evaluate", "report")


def image_folder(where: Path, gigabytes: float, seed: int = 0) -> int:
    """train/<class>/ and test/<class>/ JPEGs holding `gigabytes` of decoded pixels; their count."""
    count = int(gigabytes * 1e9 / (SIDE * SIDE * 3))
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, SIDE)[None, :, None]
    for i in range(count):
        split, label = ("test" if i % 5 == 4 else "train"), CLASSES[i % len(CLASSES)]
        folder = where / split / label
        folder.mkdir(parents=True, exist_ok=True)
        colour = rng.uniform(0, 255, 3) * (0.5 + ramp * (1 + CLASSES.index(label)) / 4)
        pixels = np.clip(colour + rng.normal(0, 20, (SIDE, SIDE, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:07d}.jpg", quality=90)
    return count


def stage_commands(code: Path) -> dict[str, list[str]]:
    """Each stage's command as that version's dvc.yaml has it (its arguments differ by version)."""
    stages = yaml.safe_load((code / "dvc.yaml").read_text())["stages"]
    return {name: shlex.split(" ".join(stages[name]["cmd"].split())) for name in STAGES}


def run_pipeline(code: Path, folder: Path, work: Path) -> dict[str, float | str]:
    """Peak RSS (GB) of each stage of `code` on `folder`, run in `work` as `dvc repro` would."""
    work.mkdir(parents=True)
    (work / "conf").symlink_to(code / "conf")
    env = {**os.environ, "PYTHONPATH": str(code / "src"), "MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlflow.db"}
    overrides = [f"data.path={folder}", f"data.image_size={SIDE}", "data.channels=3", "model=mlp", "model.hidden=[64]"]
    overrides += ["data=imagefolder", "trainer=smoke", "tracking.registered_model=null", "report.examples=4"]
    overrides += [f"tracking.uri=sqlite:///{work}/mlflow.db"]
    params = [sys.executable, "-m", "reprovision", "params", "--conf", "conf", "--out", "params.yaml", *overrides]
    subprocess.run(params, cwd=work, env=env, check=True, capture_output=True)
    peaks: dict[str, float | str] = {}
    for name, cmd in stage_commands(code).items():
        cmd = [sys.executable if cmd[0] == "python" else cmd[0], *cmd[1:]]
        out = work / f"{name}.rss"
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", str(out), *cmd], cwd=work, env=env, capture_output=True
        )
        if done.returncode:
            peaks[name] = f"failed ({done.returncode}): {done.stderr.decode()[-300:].strip()}"
            break
        peaks[name] = int(out.read_text().split()[-1]) / 1e6  # KiB -> GB (decimal, as the sizes)
    return peaks


def checkout(rev: str, where: Path) -> Path:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), rev], check=True, capture_output=True
    )
    return where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.4], help="GB of decoded pixels")
    parser.add_argument("--baseline", help="an earlier revision to run beside this checkout")
    parser.add_argument("--baseline-up-to", type=float, help="run the baseline only at sizes up to this many GB")
    parser.add_argument("--out", type=Path, help="JSON to write the figures to")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="memory-") as tmp:
        tmp = Path(tmp)
        versions = {"this checkout": ROOT}
        if args.baseline:
            versions[args.baseline] = checkout(args.baseline, tmp / "baseline")
        try:
            for size in args.sizes:
                folder = tmp / f"images-{size:g}"
                count = image_folder(folder, size)
                for label, code in versions.items():
                    if label == args.baseline and args.baseline_up_to is not None and size > args.baseline_up_to:
                        continue
                    peaks = run_pipeline(code, folder, tmp / f"run-{size:g}-{len(results)}")
                    results.append({"code": label, "decoded_gb": size, "images": count, "peak_gb": peaks})
                    print(json.dumps(results[-1]), flush=True)
        finally:
            if args.baseline:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp / "baseline")])
    print(table(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


def table(results: list[dict]) -> str:
    """Markdown: one row per (code, size), a column per stage (peak RSS, GB)."""
    lines = ["| code | decoded GB | " + " | ".join(STAGES) + " |", "|---|---:|" + "---:|" * len(STAGES)]
    for r in results:
        peaks = [r["peak_gb"].get(s, "-") for s in STAGES]
        cells = [f"{v:.2f}" if isinstance(v, float) else v if v == "-" else "failed" for v in peaks]
        lines.append(f"| {r['code']} | {r['decoded_gb']:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
