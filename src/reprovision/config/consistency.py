"""Whether params.yaml is what conf/ composes to: `dvc repro` does not compose conf/ (only
`dvc exp run` does), so an edit of conf/ would otherwise train the old config without a word."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from reprovision.config.load import compose, leaves, recorded_overrides

# Set by `reprovision reproduce` for the pipeline it reruns: params.yaml is a recorded run's config
# on purpose, and MLflow tags the new run with the run it reproduces.
REPRODUCES_ENV = "REPROVISION_REPRODUCES"


def drift(params_path: Path, conf_dir: Path) -> list[tuple[str, Any, Any]]:
    """(key, value in conf/, value in params.yaml) for every key where the two differ; a key
    missing on one side reads as None there. conf/ is composed with the overrides that
    `reprovision params` wrote params.yaml with, if any."""
    overrides = recorded_overrides(params_path.read_text())
    composed = leaves(OmegaConf.to_container(compose(conf_dir, overrides)))
    resolved = leaves(OmegaConf.to_container(OmegaConf.load(params_path)))
    keys = sorted(set(composed) | set(resolved))
    return [(k, composed.get(k), resolved.get(k)) for k in keys if composed.get(k) != resolved.get(k)]
