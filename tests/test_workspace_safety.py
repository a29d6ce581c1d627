"""What a user types into `dvc exp run -S` is refused before it deletes or rewrites anything in the
workspace: DVC removes a stage's declared outputs before any stage runs, so no output path may
depend on a config value."""

from __future__ import annotations

import hashlib
import secrets
import subprocess

import pytest
import yaml
from tests.project import BIN, ROOT, project_copy, run


def tree(work) -> dict[str, str]:
    """Every file under `work` (outside .git and DVC's own state) and its content hash."""
    return {
        str(p.relative_to(work)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(work.rglob("*"))
        if p.is_file() and p.relative_to(work).parts[0] not in (".git", ".dvc")
    }


def test_no_stage_output_path_holds_a_config_value():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        for out in stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", []):
            path = next(iter(out)) if isinstance(out, dict) else out
            assert "${" not in path, f"stage {name}'s output {path} depends on a config value"


@pytest.mark.parametrize("name", ["../../mlflow.db", "../../src", "../../README.md"])
def test_a_dataset_name_that_is_a_path_deletes_nothing(tmp_path, name):
    work = project_copy(ROOT, tmp_path)
    (work / "mlflow.db").write_bytes(b"every run's history")  # untracked: git could not bring it back
    before = tree(work)
    proc = run(work, str(BIN / "dvc"), "exp", "run", "-S", f"data.name={name}", ok=False)
    assert proc.returncode != 0
    assert f"data.name={name!r} is out of range" in proc.stdout + proc.stderr
    subprocess.run(["git", "checkout", "-q", "params.yaml"], cwd=work, check=True)  # DVC wrote the override there
    after = tree(work)
    assert {k: v for k, v in after.items() if k != "data/config.checked"} == before


@pytest.mark.parametrize("key", ["data.mirror", "tracking.uri"])
def test_a_password_typed_into_a_url_never_reaches_dvc_lock_or_git(tmp_path, key):
    secret = secrets.token_hex(8)  # in no file of the repository
    override = f"{key}=http://bob:{secret}@127.0.0.1:9/"
    work = project_copy(ROOT, tmp_path)
    lock = (work / "dvc.lock").read_bytes()
    proc = run(work, str(BIN / "dvc"), "exp", "run", "-S", override, ok=False)
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"{key} holds a password" in said
    assert (work / "dvc.lock").read_bytes() == lock
    history = subprocess.run(["git", "log", "--all", "-p"], cwd=work, capture_output=True, text=True).stdout
    assert secret not in history + said  # no experiment commit, nothing for `dvc exp push` to share


def test_a_stage_under_dvc_holds_the_workspace_lock_dvc_commands_take(tmp_path, monkeypatch):
    from dvc.lock import LockError, make_lock

    from reprovision.process import HOLDER_ENV, hold_dvc_lock

    (tmp_path / ".dvc" / "tmp").mkdir(parents=True)
    (tmp_path / "src").mkdir()
    monkeypatch.chdir(tmp_path / "src")  # a stage's working directory may be below the root
    monkeypatch.setenv("DVC_STAGE", "train")
    dvc_lock = make_lock(str(tmp_path / ".dvc" / "tmp" / "lock"), tmp_dir=str(tmp_path / ".dvc" / "tmp"))
    with dvc_lock:  # DVC locked the workspace before the stage, and let go to run it: its file stays
        pass
    with hold_dvc_lock():
        with pytest.raises(LockError):  # what a second `dvc exp run` meets before writing params.yaml
            dvc_lock.lock()
        with hold_dvc_lock():  # a DDP rank Lightning started: it inherits the holder's environment
            pass
        monkeypatch.delenv(HOLDER_ENV)
        monkeypatch.setenv("LOCAL_RANK", "1")
        with hold_dvc_lock():  # a rank torchrun started beside this one: not a second command
            pass
    with dvc_lock:  # released when the stage ends
        pass


def test_where_dvc_locks_with_hard_links_the_stage_leaves_its_lock_alone(tmp_path, monkeypatch):
    """core.hardlink_lock (NFS; at any config level): DVC's lock deletes its file when it lets go, and
    a file left at its path would read to DVC as held; the stage takes nothing there, and the
    pipeline runs."""
    from dvc.lock import make_lock

    from reprovision.process import hold_dvc_lock

    (tmp_path / ".dvc" / "tmp").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_STAGE", "train")
    lock = make_lock(
        str(tmp_path / ".dvc" / "tmp" / "lock"), tmp_dir=str(tmp_path / ".dvc" / "tmp"), hardlink_lock=True
    )
    with lock:  # DVC before the stage
        pass
    with hold_dvc_lock():
        assert not (tmp_path / ".dvc" / "tmp" / "lock").exists()
    with lock:  # DVC after the stage: it takes its lock again
        pass
