"""The numerical paths a process computes on, pinned before numpy and torch load, so the same
config, data and code give the same bytes on any x86-64 machine; and what the process really ran
with, for its MLflow run.

Measured on one machine (README "Reproducing a run"): the vector ISA of ATen's and oneDNN's kernels,
MKL's code path (chosen by CPU vendor and ISA) and the intra-op thread count each change a trained
model's bytes. Each is read once, when its library starts, from the environment: set here, before
any of them loads, from the config's `numerics` section.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from dataclasses import dataclass
from pathlib import Path

# Per `numerics.isa`: ATen's dispatch level, oneDNN's ceiling and numpy's features above it (its
# dispatch groups: X86_V3 is AVX2, X86_V4 and the AVX512_* groups AVX-512).
ISAS = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"},
    "default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"},
}  # fmt: skip
# MKL's conditional numerical reproducibility: one code path whatever the CPU's vendor (AVX2 and
# the rest are honoured on Intel only; AMD would stay on its automatic path).
MKL_BRANCH = "COMPATIBLE"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
CUBLAS = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}  # what cuBLAS needs to be deterministic, read when CUDA starts
PINNED_ENV = "REPROVISION_NUMERICS"  # what this process pinned, for its children and its fingerprint
MANAGED = (*dict.fromkeys(k for isa in ISAS.values() for k in isa), "MKL_CBWR", *THREAD_VARIABLES, *CUBLAS, PINNED_ENV)


@dataclass(frozen=True)
class Numerics:
    portable: bool = True
    isa: str = "avx2"
    threads: int = 2


def settings(params: Path) -> Numerics:
    """The `numerics` section of a params.yaml, read without the config machinery (this runs before
    numpy loads); the defaults where the file or the section is missing or not plain values (the
    stage's own config check then names a bad value)."""
    import yaml

    try:
        section = (yaml.safe_load(params.read_text()) or {}).get("numerics") or {}
        found = Numerics(
            bool(section.get("portable", True)), str(section.get("isa", "avx2")), int(section.get("threads", 2))
        )
    except (OSError, yaml.YAMLError, AttributeError, TypeError, ValueError):
        return Numerics()
    return found if found.isa in ISAS and found.threads >= 1 else Numerics()


def pin(numerics: Numerics) -> dict[str, str]:
    """Set the environment the numerical libraries read when they start; returns what was set.
    A library already loaded in this process (numpy under MLflow's model server) keeps its own
    paths: only what can still take effect is set, and the fingerprint says what ran."""
    if not numerics.portable:
        if PINNED_ENV in os.environ:  # a pinned parent (a sweep, a test run) set these: not this process's
            for name in MANAGED:
                os.environ.pop(name, None)
        return {}
    threads = dict.fromkeys(THREAD_VARIABLES, str(numerics.threads))
    wanted = {**ISAS[numerics.isa], "MKL_CBWR": MKL_BRANCH, **threads, **CUBLAS}
    if "numpy" in sys.modules:
        wanted.pop("NPY_DISABLE_CPU_FEATURES")
    if "torch" in sys.modules:  # nothing of torch's can change any more
        wanted = {k: v for k, v in wanted.items() if k == "NPY_DISABLE_CPU_FEATURES"}
    os.environ.update(wanted)
    if wanted:
        os.environ[PINNED_ENV] = f"isa={numerics.isa} threads={numerics.threads}"
    else:  # too late: what an earlier pin of this process set (tests' conftest) is what runs
        os.environ.setdefault(PINNED_ENV, "not pinned")
    return wanted


def settle() -> None:
    """Once the command's module has loaded torch, in a pinned process: the pinned thread count
    (torch caps what OMP_NUM_THREADS asks at the machine's cores: 2 threads pinned would be 1 on a
    one-core machine), and cuDNN's deterministic kernels, not its autotuned ones, for inference on
    a GPU (train's Trainer sets its own from trainer.deterministic). Not
    torch.use_deterministic_algorithms: it imports torch's compiler (1.5 s of every start here),
    and the inference ops it would switch have no nondeterministic CPU kernel."""
    if os.environ.get(PINNED_ENV, "not pinned") == "not pinned" or "torch" not in sys.modules:
        return
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False


def pin_from(argv: list[str]) -> dict[str, str]:
    """pin() with the settings of the params.yaml a command line names (--params), else ./params.yaml."""
    path = Path("params.yaml")
    for i, arg in enumerate(argv):
        if arg == "--params" and i + 1 < len(argv):
            path = Path(argv[i + 1])
        elif arg.startswith("--params="):
            path = Path(arg.split("=", 1)[1])
    return pin(settings(path))


def fingerprint() -> dict[str, str]:
    """What this process computes with: CPU, torch's kernel level and threads, MKL's version and
    code path, oneDNN's version, whether the pins took effect; the GPU and its software if any."""
    import torch

    shown = torch.__config__.show()
    found = {
        "pinned": os.environ.get(PINNED_ENV, "no (numerics.portable=false)"),
        "cpu": _cpuinfo("model name") or platform.processor() or platform.machine(),
        "cpu_vendor": _cpuinfo("vendor_id") or "unknown",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": str(torch.get_num_threads()),
        "mkl": _version(r"Math Kernel Library Version ([\d.]+)", shown),
        "mkl_branch": _mkl_branch(),
        "onednn": _version(r"MKL-DNN v(\S+)", shown),
        "onednn_max_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "native"),  # read when oneDNN started
        "numpy_simd": _numpy_simd(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        found |= {"gpu": torch.cuda.get_device_name(), "cuda": str(torch.version.cuda),
                  "cudnn": str(torch.backends.cudnn.version())}  # fmt: skip
    return found


def _numpy_simd() -> str:
    """numpy's dispatch groups this process runs (NPY_DISABLE_CPU_FEATURES turns off those above the pin)."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    return " ".join(group for group in __cpu_dispatch__ if __cpu_features__.get(group)) or "baseline"


def _cpuinfo(key: str) -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    match = re.search(rf"^{key}\s*:\s*(.+)$", text, re.M)
    return match[1].strip() if match else None


def _version(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    return match[1].rstrip(",") if match else "none"


# mkl_service.h's branch numbers: what MKL_CBWR made of the request on this CPU.
MKL_BRANCHES = {1: "off", 2: "auto", 3: "compatible", 4: "sse2", 9: "avx", 10: "avx2", 12: "avx512"}


def _mkl_branch() -> str:
    """MKL's current code path, from the copy linked into torch (its service call; "unknown" where
    torch links no MKL or does not export it)."""
    import ctypes

    import torch

    try:
        library = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        get = library.mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return "unknown"
    get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
    branch = get(1)  # MKL_CBWR_BRANCH
    return MKL_BRANCHES.get(branch, str(branch))
