"""What MLflow's system-metrics sampling costs the train stage: training time (the fit loop, less
compiling) with sampling on and off, taking turns, fastest of N each.

    python bench/system_metrics.py --repeat 4
    python bench/system_metrics.py --every-s 0.5 --set trainer.max_epochs=60
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from stage import prepare, run_stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=4, help="runs of each, taking turns")
    parser.add_argument("--every-s", type=float, default=5.0, help="tracking.system_metrics_every_s")
    parser.add_argument("--set", nargs="*", default=[], help="more config overrides (Hydra syntax)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sysmetrics-") as tmp:
        work = Path(tmp)
        prepare(work, args.set)
        seconds: dict[str, list[float]] = {"off": [], "on": []}
        for i in range(args.repeat):
            for mode in ("off", "on"):
                switch = [f"tracking.system_metrics={'true' if mode == 'on' else 'false'}"]
                switch.append(f"tracking.system_metrics_every_s={args.every_s}")
                result = run_stages(work, [*args.set, *switch], f"{mode}-{i}")
                seconds[mode].append(result["train_s"])
    off, on = min(seconds["off"]), min(seconds["on"])
    print(f"training time, fastest of {args.repeat}: off {off:.3f} s, on {on:.3f} s ({args.every_s:g} s interval)")
    print(f"cost of sampling: {100 * (on - off) / off:+.1f}% (every run: off {seconds['off']}, on {seconds['on']})")


if __name__ == "__main__":
    main()
