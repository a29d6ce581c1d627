"""Validate a config against the schemas, load and flatten params.yaml, compose and write it."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigKeyError,
    MissingMandatoryValue,
    OmegaConfBaseException,
    ValidationError,
)

from reprovision.config.choices import MODEL_SCHEMAS, OPTIM_SCHEMAS
from reprovision.config.sections import Config
from reprovision.errors import ConfigError


def _choice(raw: DictConfig, group: str, schemas: dict[str, type]) -> type:
    section = raw.get(group)
    name = section.get("name") if isinstance(section, DictConfig) else None
    if name not in schemas:
        raise ConfigError(
            f"{group}.name={name!r} is unknown: choose one of {', '.join(schemas)}"
            f" (e.g. -S {group}={next(iter(schemas))})"
        )
    return schemas[name]


def validate(raw: DictConfig) -> Config:
    """Check `raw` against the schemas; return typed config or raise ConfigError (one line)."""
    if not isinstance(raw, DictConfig):
        raise ConfigError("the config must be a mapping of sections (data, model, optim, ...)")
    sections = {
        **typing.get_type_hints(Config),
        "model": _choice(raw, "model", MODEL_SCHEMAS),
        "optim": _choice(raw, "optim", OPTIM_SCHEMAS),
    }
    schema = OmegaConf.structured(Config)
    schema.model = OmegaConf.structured(sections["model"])
    schema.optim = OmegaConf.structured(sections["optim"])
    try:
        merged = OmegaConf.merge(schema, raw)
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            raise ConfigError(f"{missing[0]} is missing: add it to conf/ or params.yaml")
        return OmegaConf.to_object(merged)
    except ConfigKeyError as e:
        parent = sections.get((e.full_key or "").rpartition(".")[0], Config)
        allowed = ", ".join(f.name for f in dataclasses.fields(parent))
        raise ConfigError(f"{e.full_key} is not a known setting: allowed keys are {allowed}") from None
    except MissingMandatoryValue as e:
        raise ConfigError(f"{e.full_key} is missing: add it to conf/ or params.yaml") from None
    except ValidationError as e:
        first = str(e).splitlines()[0]
        raise ConfigError(f"{e.full_key}: {first}") from None
    except OmegaConfBaseException as e:  # anything else OmegaConf rejects
        raise ConfigError(f"{getattr(e, 'full_key', '') or 'config'}: {str(e).splitlines()[0]}") from None


def load_config(path: str | Path) -> Config:
    """Read and validate a resolved config file such as params.yaml."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file; run from the project root or pass --params")
    try:
        raw = OmegaConf.load(path)
    except Exception as e:  # YAML syntax errors come in many types
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    return validate(raw)


def flatten(cfg: Config) -> dict[str, Any]:
    """Every resolved value under a dotted key (`optim.lr`), for tracking and comparison."""
    return leaves(OmegaConf.to_container(OmegaConf.structured(cfg)))


def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as {dotted key: value}; lists stay values."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def compose(config_dir: str | Path = "conf", overrides: list[str] | None = None) -> DictConfig:
    """Compose conf/ with Hydra, exactly as `dvc exp run` does before writing params.yaml."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(str(Path(config_dir).resolve()), version_base=None):
            cfg = hydra_compose(config_name="config", overrides=overrides or [])
    except (HydraException, OmegaConfBaseException) as e:
        # Hydra's message spans lines ("Could not find 'model/x'", "Available options ..."):
        # keep it to one line, options included.
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        lines = [ln for ln in lines if not ln.startswith(("Config search path", "provider="))]
        options = [i for i, ln in enumerate(lines) if ln.startswith("Available options")]
        if options:
            i = options[0]
            choices = [o for o in lines[i + 1 :] if not o.startswith("_")]  # _base files are not options
            lines = [*lines[:i], f"{lines[i]} {', '.join(choices)}"]
        raise ConfigError("; ".join(lines)) from None
    OmegaConf.resolve(cfg)
    return cfg


# The first line of a params.yaml composed with overrides: the config stage composes conf/ with
# them again to tell an edit of conf/ (not yet composed) from a deliberate override.
OVERRIDES_HEADER = "# reprovision params: composed from conf/ with "


def write_params(path: str | Path, config_dir: str | Path = "conf", overrides: list[str] | None = None) -> Config:
    """Compose, validate, and write the resolved config (params.yaml) atomically."""
    from reprovision.files import atomic_file

    cfg = compose(config_dir, overrides)
    typed = validate(cfg)
    header = f"{OVERRIDES_HEADER}{json.dumps(overrides)}\n" if overrides else ""
    with atomic_file(path) as tmp:
        tmp.write_text(header + OmegaConf.to_yaml(cfg), encoding="utf-8")
    return typed


def recorded_overrides(text: str) -> list[str]:
    """The overrides `write_params` composed a params.yaml with (none for DVC's own composition)."""
    first = text.partition("\n")[0]
    return json.loads(first.removeprefix(OVERRIDES_HEADER)) if first.startswith(OVERRIDES_HEADER) else []
