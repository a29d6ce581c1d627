"""A `last.ckpt` that cannot be loaded safely beside a valid resume state: one line, set aside,
training starts afresh and completes; a NaN before any checkpoint does not claim one is kept."""

from __future__ import annotations

import os

import pytest
import torch
from tests.training.test_resume import digits, in_process, train_cmd  # noqa: F401 (digits: a fixture)


def interrupted_run(digits, where, capsys, monkeypatch) -> list[str]:  # noqa: F811
    """A 2-epoch run interrupted while its model goes to MLflow: resume.json and last.ckpt stay."""
    from reprovision import tracking

    cmd = train_cmd(digits, where, "trainer.max_epochs=2")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(tracking, "log_model", interrupt)
        assert in_process(cmd, capsys)[0] == 130
    assert (where / "checkpoints" / "resume.json").is_file()
    return cmd


@pytest.mark.parametrize("fault", ["runs-code", "truncated"])
def test_a_last_checkpoint_that_cannot_be_loaded_safely_is_set_aside_and_training_starts_afresh(
    digits,  # noqa: F811
    capsys,
    monkeypatch,
    fault,
):
    where = digits / f"refused-{fault}"
    cmd = interrupted_run(digits, where, capsys, monkeypatch)
    last, marker = where / "checkpoints" / "last.ckpt", where / "pwned"
    if fault == "runs-code":

        class RunsCode:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        ckpt = torch.load(last, weights_only=True)
        ckpt["loops"] = RunsCode()
        torch.save(ckpt, last)
    else:
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    bad = last.read_bytes()

    code, out, err = in_process(cmd, capsys)
    assert code == 0, err
    assert "Traceback" not in err and "resuming" not in out
    refused = where / "checkpoints" / "last.ckpt.refused"
    (line,) = [ln for ln in err.splitlines() if "set aside" in ln]
    assert line.startswith(f"train: {last}: ")
    assert line.endswith(f"; set aside as {refused}, training starts afresh")
    if fault == "runs-code":
        assert "refusing to load: it would import posix.system" in line
    else:
        assert "not a readable checkpoint" in line
    assert refused.read_bytes() == bad and not marker.exists()
    assert (where / "train.json").is_file()  # the fresh run completed

    code, out, err = in_process(cmd, capsys)  # the next run does not meet it again
    assert code == 0 and "set aside" not in err


def test_a_nan_before_any_checkpoint_does_not_claim_one_is_kept(digits, capsys):  # noqa: F811
    where = digits / "nan-at-once"
    code, _, err = in_process(train_cmd(digits, where, "optim=sgd", "optim.lr=1e12"), capsys)
    assert code == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith("reprovision train: failed: training loss is")
    assert "(epoch 1," in line and not (where / "checkpoints" / "last.ckpt").exists()
    assert line.endswith("no checkpoint had been written yet") and "kept" not in line
