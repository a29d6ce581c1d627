"""What the benchmarks share: the pipeline up to normalise in a scratch directory, and the real
train and evaluate stages run as fresh processes, as `dvc repro` runs them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from reprovision.config import compose, validate  # noqa: E402
from reprovision.data.normalise import normalise  # noqa: E402
from reprovision.data.sources import download  # noqa: E402
from reprovision.data.splitting import split  # noqa: E402


def prepare(work: Path, overrides: list[str]) -> dict:
    """The pipeline up to normalise, as the train stage finds it."""
    cfg = validate(compose(ROOT / "conf", overrides))
    download(cfg.data, work / "raw")
    summary = split(cfg.data, work / "raw", work / "split", cfg.seed)
    normalise(work / "split", work / "normalised", cfg.data.num_words, cfg.data.max_length)
    return summary


def run_stages(work: Path, overrides: list[str], name: str, evaluate: bool = False) -> dict:
    """The train stage (and evaluate) in `work/name`, tracked in `work/mlflow.db`: its timing.json,
    the process's wall time (`process_s`), and the test metrics when `evaluate`."""
    where = work / name
    where.mkdir()
    # The progress bar stays as the config has it (on by default): it is part of the stage's cost.
    extra = ["tracking.registered_model=null", f"tracking.uri=sqlite:///{work}/mlflow.db"]
    (where / "params.yaml").write_text(OmegaConf.to_yaml(compose(ROOT / "conf", [*overrides, *extra])))
    stage = [sys.executable, "-m", "reprovision"]
    cmd = [*stage, "train", "--params", "params.yaml", "--data", str(work / "normalised")]
    cmd += ["--summary", str(work / "split" / "summary.json"), "--checkpoints", "checkpoints", "--out", "models"]
    cmd += ["--metrics", "train.json", "--curves", "curves.csv", "--timing", "timing.json"]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=where, check=True, capture_output=True)
    result = {**json.loads((where / "timing.json").read_text()), "process_s": time.perf_counter() - start}
    if evaluate:
        cmd = [*stage, "evaluate", "--params", "params.yaml", "--model", "models", "--run", "checkpoints/run.json"]
        subprocess.run(
            [*cmd, "--split", str(work / "split"), "--data", str(work / "normalised"), "--out", "eval"],
            cwd=where,
            check=True,
            capture_output=True,
        )
        result.update(json.loads((where / "eval" / "eval.json").read_text()))
    return result


def train_seconds(work: Path, overrides: list[str], epochs: int, name: str) -> float:
    """Wall time of the train stage's process for `epochs` epochs."""
    return run_stages(work, [*overrides, f"trainer.max_epochs={epochs}"], name)["process_s"]
