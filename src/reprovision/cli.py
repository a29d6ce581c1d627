"""Command line: `reprovision <stage> ...` (also `python -m reprovision <stage> ...`)."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
import time
from collections.abc import Iterator

STARTED = time.perf_counter()  # the command's start: stages report their start-up time from here

# Stage modules are imported only when their command runs: `download` need not load torch.
COMMANDS = {
    "config": ("reprovision.stages.config", "check params.yaml: valid, and composed from conf/"),
    "download": ("reprovision.stages.download", "fetch and verify a dataset's raw files"),
    "split": ("reprovision.stages.split", "stratified train/val/test split"),
    "normalise": ("reprovision.stages.normalise", "per-channel statistics from train, applied"),
    "train": ("reprovision.stages.train", "train with Lightning, tracked in MLflow"),
    "evaluate": ("reprovision.stages.evaluate", "test-split metrics of the best checkpoint"),
    "report": ("reprovision.stages.report", "HTML report of the run"),
    "params": ("reprovision.commands.params", "compose conf/ into params.yaml (overrides allowed)"),
    "check": ("reprovision.commands.check", "compare metrics with a baseline; exit 1 on a regression"),
    "mlflow-run": ("reprovision.commands.mlflow_run", "the MLflow UI address of a DVC experiment's run"),
    "reproduce": ("reprovision.commands.reproduce", "rerun a past MLflow run's config and compare"),
    "sweep": ("reprovision.commands.sweep", "hyperparameter search on the validation split"),
    "predict": ("reprovision.commands.predict", "predict images, texts or table rows with a trained model"),
    "plots-page": ("reprovision.commands.plots_page", "build the offline `dvc plots` page template (Vega from npm)"),
    "tracking-server": (
        "reprovision.commands.tracking_server",
        "a local MLflow server on PostgreSQL, to try team tracking",
    ),
}

STAGES = ("config", "download", "split", "normalise", "train", "evaluate", "report")  # dvc.yaml's commands
COMPUTING = (*STAGES, "predict", "sweep")  # their numerics are pinned before numpy and torch load
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def usage() -> str:
    lines = [
        "usage: reprovision <command> [options]   (reprovision <command> --help)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<10} {summary}" for name, (_, summary) in COMMANDS.items()]
    return "\n".join(lines)


def quiet_libraries() -> None:
    """Drop library chatter that says nothing about this run (advertising, internal deprecations)."""
    import logging
    import warnings

    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
        lambda record: not str(record.msg).startswith("💡 Tip")
    )
    # Lightning 2.6 calls a torch.utils._pytree API that this torch deprecates; not ours to fix.
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    # Augmentation lives in the module's on_after_batch_transfer on purpose (on the device).
    warnings.filterwarnings("ignore", message=".*overridden `on_after_batch_transfer`.*")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (`kill`, a scheduler, `docker stop`) raises Terminated, a KeyboardInterrupt, where
    the command is, so every `finally` cleans up as on Ctrl-C: no half-written temporaries.
    Lightning chains this handler after its own during a fit."""
    from reprovision.errors import Terminated

    def terminate(signum, frame):
        raise Terminated

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_command(command: str, argv: list[str]) -> None:
    """Import the command's module, parse its arguments and run it. A stage holds the DVC
    workspace's lock from before its imports (seconds, for train) until it ends."""
    from reprovision.process import hold_dvc_lock

    with hold_dvc_lock() if command in STAGES else contextlib.nullcontext():
        if command in COMPUTING:
            from reprovision import numerics

            numerics.pin_from(argv)  # before the command's module imports numpy or torch
        quiet_libraries()
        module = importlib.import_module(COMMANDS[command][0])
        if command in COMPUTING:
            numerics.settle()
        parser = argparse.ArgumentParser(prog=f"reprovision {command}", description=module.__doc__)
        module.add_arguments(parser)
        parser.set_defaults(started=STARTED)  # stages that time themselves count from the command's start
        args = parser.parse_args(argv)  # exits 2 on bad arguments
        with sigterm_as_interrupt():
            module.run(args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return EXIT_OK if argv else EXIT_BAD_INPUT
    command = argv[0]
    if command not in COMMANDS:
        print(
            f"reprovision: error: unknown command {command!r}; choose one of {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT

    from reprovision.errors import BadInput, StageFailed, Terminated

    try:
        run_command(command, argv[1:])
    except BadInput as e:
        print(f"reprovision {command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileNotFoundError as e:  # an input a stage needs is not there
        print(
            f"reprovision {command}: error: {e.filename}: no such file; run the stages before this one "
            "(dvc repro) or check the path",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    except StageFailed as e:
        print(f"reprovision {command}: failed: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as e:
        how = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
        print(f"reprovision {command}: {how}; outputs were not written", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT)  # as the shell reports it
    return EXIT_OK
