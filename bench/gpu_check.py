"""The GPU figures in one run (bench/gpu_check.sh runs it on the device machine): the data prepared
once, then each section in turn, the results file rewritten after each, so a run cut short still
returns what it measured.

1. speed: the train stage's loop against a bare PyTorch loop and Lightning alone (bench/speed.py
   (b)), with and without torch.compile: training seconds and the ratios;
2. time to accuracy: the real train and evaluate stages (MLflow included) with
   `experiment=cifar10_fast`: training seconds, compile seconds apart, flip-TTA test accuracy;
3. determinism: that run again from scratch: model bytes and metrics compared;
4. GPU utilisation beside throughput: the system metrics MLflow recorded for the first run;
5. the environment: GPU, driver, torch, CUDA, cuDNN.

    python bench/gpu_check.py --cifar10 .gpu-check/data/cifar10-jpeg.tar.gz --out "$OUT"   # the GPU
    python bench/gpu_check.py --cpu --out /tmp/check                                      # rehearsal

Writes gpu-check.json and gpu-check.md to --out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from stage import ROOT, prepare, run_stages  # bench/stage.py: python puts bench/ on sys.path

CPU = {  # the rehearsal: the same sections, small enough for the test suite on a CPU
    "overrides": ["trainer.max_epochs=2", "trainer.progress_bar=false"],
    "speed_epochs": 1,
    "compile": [False],
}
GPU = {
    "overrides": ["experiment=cifar10_fast", "trainer.progress_bar=false"],
    "speed_epochs": 2,
    "compile": [True, False],
}


def environment() -> dict:
    found = {"torch": torch.__version__, "python": platform.python_version(), "cpu_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        found |= {"gpu": torch.cuda.get_device_name(), "cuda": torch.version.cuda,
                  "cudnn": torch.backends.cudnn.version()}  # fmt: skip
        if shutil.which("nvidia-smi"):
            query = ["nvidia-smi", "--query-gpu=driver_version,memory.total", "--format=csv,noheader"]
            found["driver, memory"] = subprocess.run(query, capture_output=True, text=True).stdout.strip()
    return found


def speed(work: Path, overrides: list[str], epochs: int, compiled: bool, out: Path) -> dict:
    name = f"check-compile-{str(compiled).lower()}"
    cmd = [sys.executable, str(ROOT / "bench" / "speed.py"), "--work", str(work), "--epochs", str(epochs),
           "--repeat", "1", "--name", name, "--out", str(out), "--set", *overrides,
           f"trainer.compile={str(compiled).lower()}"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads((out / f"speed-{name}.json").read_text())["overhead"]


def stages_run(work: Path, overrides: list[str], name: str) -> dict:
    result = run_stages(work, overrides, name, evaluate=True)
    result["model_md5"] = hashlib.md5((work / name / "models" / "model.ckpt").read_bytes()).hexdigest()
    result["eval_json"] = (work / name / "eval" / "eval.json").read_text()
    return result


def gpu_utilisation(work: Path) -> dict:
    """The mean of each GPU system metric MLflow sampled during the first timed run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{work}/mlflow.db")
    run_id = json.loads((work / "accuracy-1" / "checkpoints" / "run.json").read_text())["run_id"]
    metrics = client.get_run(run_id).data.metrics
    return {k: v for k, v in metrics.items() if k.startswith("system/gpu")}


def write(out: Path, results: dict) -> None:
    (out / "gpu-check.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["| section | figure |", "|---|---|"]
    for section, values in results.items():
        for key, value in values.items() if isinstance(values, dict) else [("", values)]:
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            lines.append(f"| {section} | {key}: {shown} |" if key else f"| {section} | {shown} |")
    (out / "gpu-check.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="the rehearsal: digits, small, on the CPU")
    parser.add_argument("--cifar10", type=Path, help="the CIFAR-10 JPEG archive (an image folder)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    plan = CPU if args.cpu else GPU
    overrides = list(plan["overrides"])
    if not args.cpu:
        overrides.append(f"data.path={args.cifar10.resolve()}")
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"environment": environment()}
    write(args.out, results)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        prepare(work, overrides)
        results["environment"]["prepare_s"] = time.perf_counter() - start
        for compiled in plan["compile"]:
            found = speed(work, overrides, plan["speed_epochs"], compiled, Path(tmp) / "speed")
            results[f"speed, compile={compiled}"] = {k: found[k] for k in (
                "bare_loop_s", "lightning_alone_s", "stage_train_s", "ratio", "lightning_alone_ratio",
                "stage_compile_s", "stage_startup_s")}  # fmt: skip
            write(args.out, results)
        first = stages_run(work, overrides, "accuracy-1")
        results["time to accuracy"] = {k: first.get(k) for k in (
            "train_s", "compile_s", "startup_s", "train_images_per_s", "test/acc")}  # fmt: skip
        write(args.out, results)
        second = stages_run(work, overrides, "accuracy-2")
        results["determinism"] = {"same model bytes": first["model_md5"] == second["model_md5"],
                                  "same test metrics": first["eval_json"] == second["eval_json"],
                                  "model md5": first["model_md5"]}  # fmt: skip
        results["gpu utilisation"] = gpu_utilisation(work) or "no GPU sampled (CPU run)"
        write(args.out, results)
    print((args.out / "gpu-check.md").read_text())


if __name__ == "__main__":
    main()
