"""Data larger than memory: each stage's peak memory stays where it is as the data grows."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.data.formats import photo_archive
from tests.project import pipeline_env

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("config", "download", "split", "normalise", "train", "evaluate")
# The stage's command under a parent that reports its children's peak resident memory (KiB):
# the stage and any decoding or reading processes it starts.
METER = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)"
)


def peaks(tmp_path: Path, images: int) -> dict[str, float]:
    """Peak MiB of each stage's command (as dvc.yaml has it) on a folder of `images` photos."""
    work = tmp_path / str(images)
    work.mkdir()
    archive = photo_archive(tmp_path / f"{images}.tar", {"train": {"a": images // 2, "b": images - images // 2}}, 224)
    (work / "conf").symlink_to(ROOT / "conf")
    overrides = ["data=imagefolder", f"data.path={archive}", "data.image_size=224", "model=mlp", "model.hidden=[8]"]
    overrides += [
        "trainer=smoke",
        "data.eval_batch_size=64",
        "evaluate.baseline_rows=20",
        "tracking.registered_model=null",
    ]
    # A test-sized stand-in for the 256 MB default: training reads its batches from the shards.
    overrides += ["data.device_max_mb=16", f"tracking.uri=sqlite:///{work}/mlflow.db"]
    cmd = [sys.executable, "-m", "reprovision", "params", "--conf", "conf", "--out", "params.yaml", *overrides]
    subprocess.run(cmd, cwd=work, check=True, capture_output=True)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    found = {}
    for name in STAGES:
        cmd = shlex.split(" ".join(stages[name]["cmd"].split()))
        cmd = [sys.executable if cmd[0] == "python" else cmd[0], *cmd[1:]]
        done = subprocess.run(
            [sys.executable, "-c", METER, *cmd], cwd=work, env=pipeline_env(), capture_output=True, text=True
        )
        assert done.returncode == 0, f"{name}: {done.stderr[-2000:]}"
        found[name] = int(done.stderr.split()[-1]) / 1024
    return found


@pytest.mark.slow
def test_no_stage_needs_more_memory_for_ten_times_the_photos(tmp_path):
    """1,000 photos of 224x224 (150 MB decoded) against 10,000 (1.5 GB): every stage's peak
    within 8%. Seen failing with the splits on the device for training (at 6,000 photos: train
    1.37 -> 1.96 GB) and, in an earlier form of this test, with stacked images in download and
    split. A stage's peak hides what it holds below its headroom: evaluate holding the whole
    300 MB test split peaked 0.94 -> 0.95 GB (its peak comes later, from plotting and MLflow)."""
    small, large = peaks(tmp_path, 1000), peaks(tmp_path, 10000)
    for name in STAGES:
        assert large[name] < 1.08 * small[name], (name, small, large)
