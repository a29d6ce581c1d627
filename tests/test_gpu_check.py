"""The prepared GPU check (bench/gpu_check.sh) cannot rot: its CPU rehearsal runs every section
through the real stages, and its dry run sizes what would travel to the device machine."""

from __future__ import annotations

import json
import subprocess

import pytest
from tests.project import ROOT, pipeline_env

pytestmark = pytest.mark.slow


def test_the_rehearsal_measures_every_section_and_the_dry_run_fits_the_device_tools_limit(tmp_path):
    proc = subprocess.run(["bash", "bench/gpu_check.sh", "--cpu"], cwd=ROOT, env=pipeline_env(OUT=str(tmp_path)),
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads((tmp_path / "gpu-check.json").read_text())
    assert {"environment", "speed, compile=False", "time to accuracy", "determinism", "gpu utilisation"} <= set(found)
    assert found["speed, compile=False"]["bare_loop_s"] > 0 and found["time to accuracy"]["test/acc"] > 0.5
    assert found["determinism"]["same model bytes"] and found["determinism"]["same test metrics"]
    assert (tmp_path / "gpu-check.md").read_text().startswith("| section | figure |")
    dry = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run"], cwd=ROOT, capture_output=True, text=True)
    assert dry.returncode == 0 and " MiB of 64" in dry.stdout
