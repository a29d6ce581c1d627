"""config stage: the resolved config is valid, is what conf/ composes to, and can run on this
machine, before any other stage's outputs are touched.

DVC deletes a stage's outputs before running it, so a config a stage refuses would cost the
outputs of the last good run. Every stage depends on this one's output, whose bytes never
change: DVC runs it first whenever params.yaml or conf/ changed, and a refusal (exit 2) stops
the pipeline with everything in place. Under `dvc exp run` DVC has just composed params.yaml
from conf/ and the overrides, and `reprovision reproduce` restores a recorded run's config on
purpose: those skip the comparison with conf/, never the validation.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from reprovision.config import ConfigError, load_config
from reprovision.config.consistency import REPRODUCES_ENV, drift
from reprovision.files import atomic_file

CHECKED = "the config in params.yaml is valid and composed from conf/\n"  # the same bytes every run
SHOWN = 3  # differing keys named in the message


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", type=Path, help="resolved config")
    parser.add_argument("--conf", default="conf", type=Path, help="Hydra config directory")
    parser.add_argument("--out", required=True, type=Path, help="the stage's output, which every stage depends on")


def run(args: argparse.Namespace) -> None:
    cfg = load_config(args.params)  # every section, every value: one line naming the first bad key
    composed_by_dvc = bool(os.environ.get("DVC_EXP_NAME")) or bool(os.environ.get(REPRODUCES_ENV))
    if not composed_by_dvc and (differences := drift(args.params, args.conf)):
        shown = ", ".join(f"{k}: {a!r} in {args.conf}/, {b!r} in {args.params}" for k, a, b in differences[:SHOWN])
        more = f" and {len(differences) - SHOWN} more" if len(differences) > SHOWN else ""
        raise ConfigError(
            f"{args.params} is not what {args.conf}/ composes to ({shown}{more}); `dvc repro` runs {args.params} as "
            f"it is and does not compose {args.conf}/: run `make params` (or `reprovision params KEY=VALUE ...`) "
            "then `dvc repro`, or `dvc exp run -S KEY=VALUE`"
        )
    from reprovision.training.preflight import check_machine  # torch: only once the config is valid

    check_machine(cfg)  # the accelerator, the tracking store, memory for the net: what train would refuse
    with atomic_file(args.out) as tmp:
        tmp.write_text(CHECKED)
    print(f"config: {args.params} valid and composed from {args.conf}/")
