"""Load the resolved config (params.yaml) and validate it against typed schemas, once."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigKeyError,
    MissingMandatoryValue,
    OmegaConfBaseException,
    ValidationError,
)

from reprovision.errors import ConfigError


def _require(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is out of range: expected {expected}")


LOADERS = ("device", "dataloader")


@dataclass
class DataConfig:
    name: str = MISSING  # one of data.sources.DATASETS
    mirror: str | None = MISSING  # http(s) base URL or local directory, tried before the official URLs
    classes: list[str] | None = MISSING  # a subset of the dataset's classes (relabelled 0..k-1)
    path: str | None = MISSING  # imagefolder: a directory or .tar/.tar.gz/.zip of train/<class>/*
    channels: int | None = MISSING  # imagefolder: 1 (greyscale) or 3 (RGB)
    image_size: int | None = MISSING  # imagefolder: resize every image to this square size
    val_fraction: float = MISSING
    test_fraction: float = MISSING  # used only by datasets without a test split of their own
    batch_size: int = MISSING
    eval_batch_size: int = MISSING  # validation and test batches (per process): larger is faster
    loader: str = MISSING  # device (splits on the training device) | dataloader (host memory, copied per batch)
    num_workers: int = MISSING  # loader=dataloader only
    crop_padding: int = MISSING  # training augmentation: random crop after padding by this many pixels
    flip: bool = MISSING  # training augmentation: random horizontal flip

    def __post_init__(self) -> None:
        from reprovision.data.sources import DATASETS, IMAGEFOLDER

        _require(self.name in DATASETS, "data.name", self.name, "one of " + ", ".join(DATASETS))
        _require(0 < self.val_fraction < 1, "data.val_fraction", self.val_fraction, "0 < x < 1")
        _require(0 < self.test_fraction < 1, "data.test_fraction", self.test_fraction, "0 < x < 1")
        _require(self.batch_size >= 1, "data.batch_size", self.batch_size, "an integer >= 1")
        _require(self.eval_batch_size >= 1, "data.eval_batch_size", self.eval_batch_size, "an integer >= 1")
        _require(self.loader in LOADERS, "data.loader", self.loader, "one of " + ", ".join(LOADERS))
        _require(self.num_workers >= 0, "data.num_workers", self.num_workers, "an integer >= 0")
        _require(self.crop_padding >= 0, "data.crop_padding", self.crop_padding, "an integer >= 0")
        _require(self.channels in (None, 1, 3), "data.channels", self.channels, "1, 3 or null")
        _require(
            self.image_size is None or self.image_size >= 1,
            "data.image_size",
            self.image_size,
            "an integer >= 1 or null",
        )
        _require(
            self.classes is None or len(set(self.classes)) == len(self.classes) >= 2,
            "data.classes",
            self.classes,
            "null or at least two distinct class names",
        )
        if self.name == IMAGEFOLDER:
            if not self.path:
                raise ConfigError(
                    "data=imagefolder needs data.path: a directory or .tar/.tar.gz/.zip of "
                    "train/<class>/ images (-S data.path=...)"
                )
            _require(self.channels is not None, "data.channels", self.channels, "1 or 3 for data=imagefolder")


INITS = ("default", "he", "xavier")  # default: PyTorch's own initialisation of each layer


def _positive_ints(key: str, values: list[int]) -> None:
    _require(len(values) >= 1 and min(values) >= 1, key, values, "a non-empty list of positive integers")


def _fraction(key: str, value: float) -> None:
    _require(0 <= value < 1, key, value, "0 <= x < 1")


# One schema per model option; the keys are the names in models.nets.NETS.
@dataclass
class ModelConfig:
    name: str = MISSING
    init: str = MISSING  # weight initialisation: default | he | xavier

    def __post_init__(self) -> None:
        _require(self.init in INITS, "model.init", self.init, "one of " + ", ".join(INITS))


@dataclass
class CNNConfig(ModelConfig):
    channels: list[int] = MISSING
    hidden: int = MISSING
    dropout: float = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive_ints("model.channels", self.channels)
        _require(self.hidden >= 1, "model.hidden", self.hidden, "an integer >= 1")
        _fraction("model.dropout", self.dropout)


@dataclass
class MLPConfig(ModelConfig):
    hidden: list[int] = MISSING
    dropout: float = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(all(h >= 1 for h in self.hidden), "model.hidden", self.hidden, "a list of positive integers")
        _fraction("model.dropout", self.dropout)


@dataclass
class TFCNNConfig(ModelConfig):
    channels: list[int] = MISSING
    hidden: int = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive_ints("model.channels", self.channels)
        _require(self.hidden >= 1, "model.hidden", self.hidden, "an integer >= 1")


@dataclass
class KerasCNNConfig(TFCNNConfig):
    conv_dropout: float = MISSING
    dense_dropout: float = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        _fraction("model.conv_dropout", self.conv_dropout)
        _fraction("model.dense_dropout", self.dense_dropout)


@dataclass
class TanhCNNConfig(TFCNNConfig):
    dropout: float = MISSING  # Dropout2d after each pooling
    batch_norm: bool = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        _fraction("model.dropout", self.dropout)


@dataclass
class FastCNNConfig(ModelConfig):
    widths: list[int] = MISSING  # the three conv-BN-GELU groups' widths

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(
            len(self.widths) == 3 and min(self.widths) >= 1, "model.widths", self.widths, "three positive integers"
        )


MODEL_SCHEMAS: dict[str, type] = {
    "cnn": CNNConfig,
    "mlp": MLPConfig,
    "tf_cnn": TFCNNConfig,
    "keras_cnn": KerasCNNConfig,
    "net": TanhCNNConfig,
    "net_width": TanhCNNConfig,
    "net_dropout": TanhCNNConfig,
    "net_batchnorm": TanhCNNConfig,
    "resnet18": ModelConfig,
    "fast_cnn": FastCNNConfig,
}


# Learning rate over training, after `warmup_epochs` of linear warm-up from 0:
# constant; step (x gamma every step_epochs); cosine (to 0); one_cycle (linearly to 0).
SCHEDULES = ("constant", "step", "cosine", "one_cycle")


# One schema per optimizer option; the keys are the names in models.system.OPTIMIZERS.
@dataclass
class SGDConfig:
    name: str = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    schedule: str = MISSING
    warmup_epochs: float = MISSING
    step_epochs: int = MISSING  # schedule=step only
    gamma: float = MISSING  # schedule=step only

    def __post_init__(self) -> None:
        _require(self.lr > 0, "optim.lr", self.lr, "a number > 0")
        _require(self.weight_decay >= 0, "optim.weight_decay", self.weight_decay, "a number >= 0")
        _require(self.schedule in SCHEDULES, "optim.schedule", self.schedule, "one of " + ", ".join(SCHEDULES))
        _require(self.warmup_epochs >= 0, "optim.warmup_epochs", self.warmup_epochs, "a number >= 0")
        _require(self.step_epochs >= 1, "optim.step_epochs", self.step_epochs, "an integer >= 1")
        _require(0 < self.gamma <= 1, "optim.gamma", self.gamma, "0 < x <= 1")


@dataclass
class MomentumConfig(SGDConfig):  # momentum and nesterov
    momentum: float = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        _fraction("optim.momentum", self.momentum)


@dataclass
class RMSpropConfig(MomentumConfig):
    alpha: float = MISSING  # smoothing of the squared-gradient average

    def __post_init__(self) -> None:
        super().__post_init__()
        _fraction("optim.alpha", self.alpha)


@dataclass
class AdamConfig(SGDConfig):  # adam and adamw
    betas: list[float] = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "optim.betas",
            self.betas,
            "two numbers in [0, 1)",
        )


OPTIM_SCHEMAS: dict[str, type] = {
    "sgd": SGDConfig,
    "momentum": MomentumConfig,
    "nesterov": MomentumConfig,
    "adagrad": SGDConfig,
    "rmsprop": RMSpropConfig,
    "adam": AdamConfig,
    "adamw": AdamConfig,
}

ACCELERATORS = ("auto", "cpu", "gpu")
PRECISIONS = ("32", "bf16-mixed", "16-mixed")
STRATEGIES = ("auto", "ddp")


@dataclass
class TrainerConfig:
    max_epochs: int = MISSING
    accelerator: str = MISSING
    devices: int = MISSING  # processes per node: GPUs, or CPU processes with strategy=ddp
    num_nodes: int = MISSING
    strategy: str = MISSING  # auto (one process) | ddp (data-parallel, Lightning's DDP)
    precision: str = MISSING
    deterministic: bool = MISSING
    progress_bar: bool = MISSING
    label_smoothing: float = MISSING
    gradient_clip: float | None = MISSING  # clip the gradient norm to this; null: no clipping
    early_stopping: int | None = MISSING  # stop after this many epochs without a better val/acc
    channels_last: bool = MISSING  # NHWC memory layout for conv weights and activations (faster on GPUs)
    compile: bool = MISSING  # torch.compile the net; compile time is reported apart and cached
    checkpoint_every_s: float = MISSING  # last.ckpt and MLflow's epoch rows: this often at most, and at the end

    def __post_init__(self) -> None:
        _require(self.max_epochs >= 1, "trainer.max_epochs", self.max_epochs, "an integer >= 1")
        _require(self.checkpoint_every_s >= 0, "trainer.checkpoint_every_s", self.checkpoint_every_s, "seconds >= 0")
        _fraction("trainer.label_smoothing", self.label_smoothing)
        _require(
            self.gradient_clip is None or self.gradient_clip > 0,
            "trainer.gradient_clip",
            self.gradient_clip,
            "a number > 0 or null",
        )
        _require(
            self.early_stopping is None or self.early_stopping >= 1,
            "trainer.early_stopping",
            self.early_stopping,
            "an integer >= 1 or null",
        )
        _require(
            self.accelerator in ACCELERATORS,
            "trainer.accelerator",
            self.accelerator,
            "one of " + ", ".join(ACCELERATORS),
        )
        _require(self.devices >= 1, "trainer.devices", self.devices, "an integer >= 1")
        _require(self.num_nodes >= 1, "trainer.num_nodes", self.num_nodes, "an integer >= 1")
        _require(self.strategy in STRATEGIES, "trainer.strategy", self.strategy, "one of " + ", ".join(STRATEGIES))
        _require(
            self.precision in PRECISIONS,
            "trainer.precision",
            self.precision,
            "one of " + ", ".join(PRECISIONS),
        )


@dataclass
class EvaluateConfig:
    tta: bool = MISSING  # test-time augmentation: average the predictions for each image and its mirror


@dataclass
class TrackingConfig:
    uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else the project's sqlite store
    experiment: str = MISSING
    registered_model: str | None = MISSING  # registry name of the trained model; None: not registered


@dataclass
class ReportConfig:
    gallery_size: int = MISSING
    confused_pairs: int = MISSING  # the most confused (actual, predicted) pairs shown with examples
    examples: int = MISSING  # inspected test images: this many correct and this many wrong, seeded
    saliency: bool = MISSING
    grad_cam: bool = MISSING  # conv nets only
    occlusion: bool = MISSING
    occlusion_window: float = MISSING  # side of the occluding square, as a fraction of the image side
    filters: bool = MISSING  # the first conv layer's filters as an image grid

    def __post_init__(self) -> None:
        for key in ("gallery_size", "confused_pairs", "examples"):
            _require(getattr(self, key) >= 0, f"report.{key}", getattr(self, key), "an integer >= 0")
        _require(0 < self.occlusion_window <= 1, "report.occlusion_window", self.occlusion_window, "0 < x <= 1")


DIRECTIONS = ("higher", "lower")


@dataclass
class Tolerance:
    """How far a metric may move the wrong way before `reprovision check` calls it a regression:
    max(absolute, relative x |baseline|)."""

    direction: str = MISSING  # which way is better: higher | lower
    absolute: float | None = None
    relative: float | None = None

    def __post_init__(self) -> None:
        _require(self.direction in DIRECTIONS, "check.tolerances.*.direction", self.direction, "higher or lower")
        for key, value in (("absolute", self.absolute), ("relative", self.relative)):
            _require(value is None or value >= 0, f"check.tolerances.*.{key}", value, "a number >= 0 or null")


@dataclass
class CheckConfig:
    baseline: str = MISSING  # JSON file of metrics, committed (e.g. baselines/digits-cnn.json)
    tolerances: dict[str, Tolerance] = MISSING  # metric name -> tolerance; only these are checked


@dataclass
class SplitConfig:
    folds: int | None = MISSING  # k-fold cross-validation of the training data in the train stage

    def __post_init__(self) -> None:
        _require(self.folds is None or self.folds >= 2, "split.folds", self.folds, "an integer >= 2 or null")


SAMPLERS = ("random", "tpe")


@dataclass
class RangeConfig:
    key: str = MISSING  # a config key, e.g. optim.lr
    low: float = MISSING
    high: float = MISSING
    log: bool = False  # sample log-uniformly (learning rates, weight decay)
    integer: bool = False

    def __post_init__(self) -> None:
        _require(self.low < self.high, f"search.space[{self.key}].low", self.low, f"below high={self.high}")
        _require(not self.log or self.low > 0, f"search.space[{self.key}].low", self.low, "> 0 when log is true")


@dataclass
class SearchConfig:
    name: str = MISSING  # the best trial is written to conf/experiment/<name>.yaml
    sampler: str = MISSING  # random (coarse to fine) | tpe (Optuna)
    trials: int = MISSING
    rounds: int = MISSING  # random: the ranges narrow after each round
    keep: int = MISSING  # random: the best trials that bound the next round's ranges
    epochs: int = MISSING  # each trial's trainer.max_epochs: short trials
    space: list[RangeConfig] = MISSING

    def __post_init__(self) -> None:
        _require(self.sampler in SAMPLERS, "search.sampler", self.sampler, "random or tpe")
        _require(self.trials >= 1, "search.trials", self.trials, "an integer >= 1")
        _require(1 <= self.rounds <= self.trials, "search.rounds", self.rounds, "between 1 and search.trials")
        _require(self.keep >= 1, "search.keep", self.keep, "an integer >= 1")
        _require(self.epochs >= 1, "search.epochs", self.epochs, "an integer >= 1")
        _require(len(self.space) >= 1, "search.space", self.space, "at least one range")


@dataclass
class Config:
    seed: int = MISSING
    data: DataConfig = MISSING
    model: Any = MISSING  # one of MODEL_SCHEMAS, chosen by model.name
    optim: Any = MISSING  # one of OPTIM_SCHEMAS, chosen by optim.name
    trainer: TrainerConfig = MISSING
    evaluate: EvaluateConfig = MISSING
    tracking: TrackingConfig = MISSING
    report: ReportConfig = MISSING
    check: CheckConfig = MISSING
    search: SearchConfig = MISSING
    split: SplitConfig = MISSING


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

    def walk(prefix: str, value: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for k, v in value.items():
                out.update(walk(f"{prefix}.{k}" if prefix else str(k), v))
            return out
        return {prefix: value}

    return walk("", OmegaConf.to_container(OmegaConf.structured(cfg)))


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


def write_params(path: str | Path, config_dir: str | Path = "conf", overrides: list[str] | None = None) -> Config:
    """Compose, validate, and write the resolved config (params.yaml) atomically."""
    from reprovision.files import atomic_file

    cfg = compose(config_dir, overrides)
    typed = validate(cfg)
    with atomic_file(path) as tmp:
        tmp.write_text(OmegaConf.to_yaml(cfg), encoding="utf-8")
    return typed
