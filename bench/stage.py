"""What the benchmarks share: the pipeline up to normalise in a scratch directory, and the real
train stage timed as a fresh process, as `dvc repro` runs it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from reprovision.config import compose, validate  # noqa: E402
from reprovision.stages.download import download  # noqa: E402
from reprovision.stages.normalise import normalise  # noqa: E402
from reprovision.stages.split import split  # noqa: E402


def prepare(work: Path, overrides: list[str]) -> dict:
    """The pipeline up to normalise, as the train stage finds it."""
    cfg = validate(compose(ROOT / "conf", overrides))
    download(cfg.data, work / "raw")
    summary = split(cfg.data, work / "raw", work / "split", cfg.seed)
    normalise(work / "split", work / "normalised")
    return summary


def train_seconds(work: Path, overrides: list[str], epochs: int, name: str) -> float:
    where = work / name
    where.mkdir()
    cfg = compose(
        ROOT / "conf",
        [
            *overrides,
            f"trainer.max_epochs={epochs}",
            "trainer.progress_bar=false",
            "tracking.registered_model=null",
            f"tracking.uri=sqlite:///{work / 'mlflow.db'}",
        ],
    )
    (where / "params.yaml").write_text(OmegaConf.to_yaml(cfg))
    cmd = [sys.executable, "-m", "reprovision", "train", "--params", "params.yaml", "--data", str(work / "normalised")]
    cmd += ["--summary", str(work / "split" / "summary.json"), "--checkpoints", "checkpoints", "--out", "models"]
    cmd += ["--metrics", "train.json", "--curves", "curves.csv"]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=where, check=True, capture_output=True)
    return time.perf_counter() - start
