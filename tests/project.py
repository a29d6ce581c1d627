"""Run the project as a user does: a fresh copy of the repository, its own dvc and CLI."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# What `make plots-page` builds with npm beside the tracked files: the offline page template that
# .dvc/config names. `dvc plots show/diff` fail without it; the rest of dvc does not need it.
PLOTS_PAGE = ".dvc/plots/offline"


def require_plots_page(root: Path = ROOT) -> None:
    """Skip the calling test when the plots page is not built; fail instead under
    REPROVISION_REQUIRE_PLOTS_PAGE=1 (CI sets it, and installs npm)."""
    if (root / PLOTS_PAGE).is_dir():
        return
    message = f"{root / PLOTS_PAGE} is missing: install npm, then run `make plots-page` (it builds it)"
    if os.environ.get("REPROVISION_REQUIRE_PLOTS_PAGE") == "1":
        pytest.fail(f"{message}; REPROVISION_REQUIRE_PLOTS_PAGE=1 requires it")
    pytest.skip(message)


def project_copy(root: Path, dest: Path) -> Path:
    """The project as a fresh clone would have it (tracked and unignored files), as a git repo, with
    the plots page if it is built (tests that draw plots call require_plots_page first)."""
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
    if (root / PLOTS_PAGE).is_dir():
        shutil.copytree(root / PLOTS_PAGE, dest / PLOTS_PAGE)
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_postgres() -> None:
    """Skip with the reason naming the package when PostgreSQL's server is missing, unless
    REPROVISION_REQUIRE_POSTGRES=1 (as in CI): then fail."""
    from reprovision.commands.tracking_server import postgres_bin
    from reprovision.errors import BadInput

    try:
        postgres_bin()
    except BadInput as e:
        if os.environ.get("REPROVISION_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{e}; REPROVISION_REQUIRE_POSTGRES=1 requires it")
        pytest.skip(str(e))
