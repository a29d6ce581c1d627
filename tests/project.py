"""Run the project as a user does: a fresh copy of the repository, its own dvc and CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# What `make install` builds beside the tracked files and a copy needs too: the offline plots page
# template that .dvc/config names (without it `dvc plots show` fails).
INSTALLED = (".dvc/plots/offline",)


def project_copy(root: Path, dest: Path) -> Path:
    """The project as a fresh clone would have it (tracked and unignored files), as a git repo."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, files):
        if (root / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, dest / name)
    for name in INSTALLED:
        if not (root / name).is_dir():
            raise FileNotFoundError(f"{root / name} is missing: run `make install` (it builds it)")
        shutil.copytree(root / name, dest / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "fresh clone"], cwd=dest, check=True)
    return dest


def pipeline_env(**env: str) -> dict[str, str]:
    """The environment a user's shell has: the project's venv first on PATH, the embedded store."""
    environ = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | env
    environ["PATH"] = f"{BIN}{os.pathsep}{environ['PATH']}"  # stage commands call `python`
    return environ


def run(cwd: Path, *cmd: str, ok: bool = True, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), cwd=cwd, env=pipeline_env(**env), capture_output=True, text=True)
    if ok:
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def dvc(cwd: Path, *args: str, **env: str) -> str:
    proc = run(cwd, str(BIN / "dvc"), *args, **env)
    return proc.stdout + proc.stderr


def reprovision(cwd: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    return run(cwd, sys.executable, "-m", "reprovision", *args, ok=ok)
