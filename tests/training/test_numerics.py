"""Portable numerics: every computing process pins its kernels and threads before numpy and torch
load, so other machines are emulated here by what differs between them (visible CPUs, the user's
thread variables) and must give the same bytes; the run records what each process ran with."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from mlflow.tracking import MlflowClient
from tests.training.test_resume import digits, train_cmd  # noqa: F401 (digits: a fixture)

from reprovision.numerics import MANAGED

CPUS = sorted(os.sched_getaffinity(0))


def run_stage(cmd: list[str], cpus: list[int] | None = None, **env: str) -> None:
    """`cmd` as its own process, on `cpus` only, with the user's `env` (their own thread settings)."""
    environ = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", *MANAGED)}  # a user's shell

    def affinity() -> None:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    proc = subprocess.run(cmd, env=environ | env, preexec_fn=affinity, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def train_and_evaluate(digits, name: str, overrides: list[str], cpus=None, **env: str) -> dict:  # noqa: F811
    """The train and evaluate stages as DVC runs them; the model's bytes, the test metrics' bytes
    and the numerics tags both processes recorded."""
    where = digits / name
    run_stage(train_cmd(digits, where, *overrides), cpus, **env)
    evaluate = [sys.executable, "-m", "reprovision", "evaluate", "--params", str(where / "params.yaml")]
    evaluate += ["--model", str(where / "models"), "--run", str(where / "checkpoints" / "run.json")]
    evaluate += ["--split", str(digits / "split"), "--data", str(digits / "normalised")]
    run_stage([*evaluate, "--out", str(where / "metrics")], cpus, **env)
    run_id = json.loads((where / "checkpoints" / "run.json").read_text())["run_id"]
    tags = MlflowClient(f"sqlite:///{digits / 'mlflow.db'}").get_run(run_id).data.tags
    return {
        "model": (where / "models" / "model.ckpt").read_bytes(),
        "metrics": (where / "metrics" / "eval.json").read_bytes(),
        "numerics": {k: v for k, v in tags.items() if k.startswith("numerics.")},
    }


EPOCHS = ["trainer.max_epochs=3"]


def native_capability() -> str:
    """What torch runs on this CPU unpinned (this test process is pinned, as a stage's is)."""
    environ = {k: v for k, v in os.environ.items() if k not in MANAGED}
    probe = [sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"]
    return subprocess.run(probe, env=environ, capture_output=True, text=True, check=True).stdout.strip()


def test_each_stage_process_records_the_kernels_mkl_path_and_threads_it_was_pinned_to(digits):  # noqa: F811
    """isa=default and 3 threads: what no machine runs by itself, so a pin set too late (after torch
    loaded), or not set, shows here whatever CPU runs the test."""
    run = train_and_evaluate(
        digits, "pinned", [*EPOCHS, "numerics.isa=default", "numerics.threads=3"], CPUS[:1], OMP_NUM_THREADS="7"
    )
    for stage in ("train", "evaluate"):
        tags = {k.removeprefix(f"numerics.{stage}."): v for k, v in run["numerics"].items() if f".{stage}." in k}
        assert tags["pinned"] == "isa=default threads=3", tags
        assert (tags["cpu_capability"], tags["threads"], tags["onednn_max_isa"]) == ("DEFAULT", "3", "SSE41"), tags
        assert tags["mkl_branch"] == "compatible" and tags["cpu_vendor"] and tags["torch"] == torch.__version__
        assert "X86_V3" not in tags["numpy_simd"] and "X86_V4" not in tags["numpy_simd"], tags  # numpy's too


def test_portable_off_runs_the_machines_own_kernels_on_all_its_cpus(digits):  # noqa: F811
    run = train_and_evaluate(digits, "native", [*EPOCHS, "numerics.portable=false"])
    tags = {k.removeprefix("numerics.train."): v for k, v in run["numerics"].items() if ".train." in k}
    assert tags["pinned"] == "no (numerics.portable=false)"
    assert tags["cpu_capability"] == native_capability()
    assert tags["threads"] == str(len(CPUS)) and tags["mkl_branch"] in ("off", "auto")


@pytest.mark.slow
@pytest.mark.skipif(len(CPUS) < 2, reason="needs two CPUs to emulate machines with one and with two")
def test_machines_with_other_cpu_counts_and_thread_settings_give_the_same_bytes(digits):  # noqa: F811
    """Two visible CPUs, one, and a user's own OMP_NUM_THREADS / MKL_NUM_THREADS of 1 (what torch
    would run with on a one-core machine: it counts the hardware's cores, not the visible ones):
    the same model bytes and test metrics."""
    two = train_and_evaluate(digits, "two-cpus", EPOCHS, CPUS[:2])
    one = train_and_evaluate(digits, "one-cpu", EPOCHS, CPUS[:1])
    own = train_and_evaluate(digits, "own-threads", EPOCHS, None, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for other in (one, own):
        assert other["model"] == two["model"] and other["metrics"] == two["metrics"]
    threads = {run["numerics"]["numerics.train.threads"] for run in (one, two, own)}
    assert threads == {"2"}


def test_this_test_process_computes_as_a_stages_process_does():
    """tests/conftest.py pins before numpy and torch load: a stage run in-process here gives the
    bytes its own process gives."""
    from reprovision.numerics import PINNED_ENV, fingerprint

    assert os.environ[PINNED_ENV] == "isa=avx2 threads=2"
    assert fingerprint()["mkl_branch"] == "compatible" and torch.backends.cpu.get_cpu_capability() in (
        "AVX2",
        "DEFAULT",
    )
    assert "X86_V4" not in fingerprint()["numpy_simd"]  # numpy loaded after the pin: no AVX-512 paths
