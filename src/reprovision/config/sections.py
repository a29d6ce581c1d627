"""The schema of each fixed config section (data, trainer, report, ...) and of the whole config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from reprovision.config.choices import MODEL_INPUTS
from reprovision.config.data import DataConfig
from reprovision.config.rules import DATABASE_LOGIN, fraction, login_for, name, no_password, require
from reprovision.errors import ConfigError

ACCELERATORS = ("auto", "cpu", "gpu")
ISAS = ("avx2", "default")  # reprovision.numerics.ISAS: the vector ISA a portable process is capped at
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
    limit_batches: int | None = MISSING  # a smoke test: this many batches of each split per epoch; None: all

    def __post_init__(self) -> None:
        require(self.max_epochs >= 1, "trainer.max_epochs", self.max_epochs, "an integer >= 1")
        require(self.checkpoint_every_s >= 0, "trainer.checkpoint_every_s", self.checkpoint_every_s, "seconds >= 0")
        require(
            self.limit_batches is None or self.limit_batches >= 1,
            "trainer.limit_batches",
            self.limit_batches,
            "an integer >= 1 or null",
        )
        fraction("trainer.label_smoothing", self.label_smoothing)
        require(
            self.gradient_clip is None or self.gradient_clip > 0,
            "trainer.gradient_clip",
            self.gradient_clip,
            "a number > 0 or null",
        )
        require(
            self.early_stopping is None or self.early_stopping >= 1,
            "trainer.early_stopping",
            self.early_stopping,
            "an integer >= 1 or null",
        )
        require(
            self.accelerator in ACCELERATORS,
            "trainer.accelerator",
            self.accelerator,
            "one of " + ", ".join(ACCELERATORS),
        )
        require(self.devices >= 1, "trainer.devices", self.devices, "an integer >= 1")
        require(self.num_nodes >= 1, "trainer.num_nodes", self.num_nodes, "an integer >= 1")
        require(self.strategy in STRATEGIES, "trainer.strategy", self.strategy, "one of " + ", ".join(STRATEGIES))
        require(
            self.precision in PRECISIONS,
            "trainer.precision",
            self.precision,
            "one of " + ", ".join(PRECISIONS),
        )


@dataclass
class NumericsConfig:
    """What a computing process pins before numpy and torch load (reprovision.numerics)."""

    portable: bool = MISSING
    isa: str = MISSING
    threads: int = MISSING

    def __post_init__(self) -> None:
        require(self.isa in ISAS, "numerics.isa", self.isa, "one of " + ", ".join(ISAS))
        require(self.threads >= 1, "numerics.threads", self.threads, "an integer >= 1")


@dataclass
class EvaluateConfig:
    tta: bool = MISSING  # test-time augmentation: average the predictions for each image and its mirror
    baseline: bool = MISSING  # fit the simplest models on the training split and score them beside the net
    baseline_rows: int = MISSING  # the most training rows the baselines are fitted on (a seeded draw)

    def __post_init__(self) -> None:
        require(self.baseline_rows >= 1, "evaluate.baseline_rows", self.baseline_rows, "an integer >= 1")


@dataclass
class TrackingConfig:
    uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else the project's sqlite store
    experiment: str = MISSING
    registered_model: str | None = MISSING  # registry name of the trained model; None: not registered
    system_metrics: bool = MISSING  # CPU, memory, disk, network (and GPU) to the run's System metrics tab
    system_metrics_every_s: float = MISSING  # one sample this often while training

    def __post_init__(self) -> None:
        name("tracking.registered_model", self.registered_model)  # it goes into models:/NAME@champion URIs
        if self.uri is not None:
            no_password("tracking.uri", self.uri, login_for(self.uri))
        every = self.system_metrics_every_s
        require(every > 0, "tracking.system_metrics_every_s", every, "seconds > 0")


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
            require(getattr(self, key) >= 0, f"report.{key}", getattr(self, key), "an integer >= 0")
        require(0 < self.occlusion_window <= 1, "report.occlusion_window", self.occlusion_window, "0 < x <= 1")


DIRECTIONS = ("higher", "lower")


@dataclass
class Tolerance:
    """How far a metric may move the wrong way before `reprovision check` calls it a regression:
    max(absolute, relative x |baseline|)."""

    direction: str = MISSING  # which way is better: higher | lower
    absolute: float | None = None
    relative: float | None = None

    def __post_init__(self) -> None:
        require(self.direction in DIRECTIONS, "check.tolerances.*.direction", self.direction, "higher or lower")
        for key, value in (("absolute", self.absolute), ("relative", self.relative)):
            require(value is None or value >= 0, f"check.tolerances.*.{key}", value, "a number >= 0 or null")


@dataclass
class Tolerances:
    """Per task, metric name -> tolerance."""

    classification: dict[str, Tolerance] = MISSING
    regression: dict[str, Tolerance] = MISSING


@dataclass
class CheckConfig:
    baseline: str = MISSING  # JSON file of metrics, committed (e.g. baselines/digits-cnn.json)
    tolerances: Tolerances = MISSING  # only the run's task's are checked


@dataclass
class SplitConfig:
    folds: int | None = MISSING  # k-fold cross-validation of the training data in the train stage
    refit: bool = False  # after the folds, the served model is retrained on train + val for cv/best_epoch epochs

    def __post_init__(self) -> None:
        require(self.folds is None or self.folds >= 2, "split.folds", self.folds, "an integer >= 2 or null")
        if self.refit and self.folds is None:
            raise ConfigError(
                "split.refit=true retrains for the epoch count the folds choose: set split.folds too (e.g. 4)"
            )


SAMPLERS = ("random", "tpe")


@dataclass
class RangeConfig:
    key: str = MISSING  # a config key, e.g. optim.lr
    low: float = MISSING
    high: float = MISSING
    log: bool = False  # sample log-uniformly (learning rates, weight decay)
    integer: bool = False

    def __post_init__(self) -> None:
        require(self.low < self.high, f"search.space[{self.key}].low", self.low, f"below high={self.high}")
        require(not self.log or self.low > 0, f"search.space[{self.key}].low", self.low, "> 0 when log is true")


@dataclass
class SearchConfig:
    name: str = MISSING  # the best trial is written to conf/experiment/<name>.yaml
    sampler: str = MISSING  # random (coarse to fine) | tpe (Optuna)
    trials: int = MISSING
    rounds: int = MISSING  # random: the ranges narrow after each round
    keep: int = MISSING  # random: the best trials that bound the next round's ranges
    epochs: int = MISSING  # each trial's trainer.max_epochs: short trials
    space: list[RangeConfig] = MISSING
    storage: str | None = None  # tpe: an Optuna RDB URL (sqlite:///optuna.db, postgresql://...) shared by workers
    study: str | None = None  # the study's name in that storage; None: search.name

    def __post_init__(self) -> None:
        name("search.name", self.name)  # the file conf/experiment/<name>.yaml: never a path
        name("search.study", self.study)
        no_password("search.storage", self.storage, DATABASE_LOGIN)
        if self.storage is not None:
            require(self.sampler == "tpe", "search.sampler", self.sampler, "tpe when search.storage is set")
        require(self.sampler in SAMPLERS, "search.sampler", self.sampler, "random or tpe")
        require(self.trials >= 1, "search.trials", self.trials, "an integer >= 1")
        require(1 <= self.rounds <= self.trials, "search.rounds", self.rounds, "between 1 and search.trials")
        require(self.keep >= 1, "search.keep", self.keep, "an integer >= 1")
        require(self.epochs >= 1, "search.epochs", self.epochs, "an integer >= 1")
        require(len(self.space) >= 1, "search.space", self.space, "at least one range")


@dataclass
class PlotsConfig:
    """What dvc.yaml's plots draw for the data's task: conf/config.yaml picks them by data.task
    from `tasks`, and the config check keeps them equal to what the stages write."""

    tasks: dict[str, dict[str, str]] = MISSING
    score: str = MISSING
    rows: str = MISSING
    template: str = MISSING
    x: str = MISSING
    y: str = MISSING


@dataclass
class Config:
    seed: int = MISSING
    data: DataConfig = MISSING
    model: Any = MISSING  # one of MODEL_SCHEMAS, chosen by model.name
    optim: Any = MISSING  # one of OPTIM_SCHEMAS, chosen by optim.name
    trainer: TrainerConfig = MISSING
    numerics: NumericsConfig = MISSING
    evaluate: EvaluateConfig = MISSING
    tracking: TrackingConfig = MISSING
    report: ReportConfig = MISSING
    check: CheckConfig = MISSING
    search: SearchConfig = MISSING
    split: SplitConfig = MISSING
    plots: PlotsConfig = MISSING

    def __post_init__(self) -> None:
        require(0 <= self.seed < 2**32, "seed", self.seed, "an integer from 0 to 2**32 - 1")
        check_combination(self)
        check_processes(self)


def check_combination(cfg: Config) -> None:
    """Settings that are each valid but not together: a model that cannot read the data, image
    augmentation on text, class settings on a regression."""
    kind, task = cfg.data.kind, cfg.data.task
    readable = MODEL_INPUTS.get(cfg.model.name, ("image",))
    if kind not in readable:
        raise ConfigError(
            f"model={cfg.model.name} reads {' or '.join(readable)} data, not {cfg.data.name}'s {kind}: "
            f"choose model=mlp{' or model=text_cnn' if kind == 'text' else ''}"
        )
    if kind != "image":
        for key, value in (("data.flip", cfg.data.flip), ("data.crop_padding", cfg.data.crop_padding),
                           ("data.crop_scale", cfg.data.crop_scale), ("evaluate.tta", cfg.evaluate.tta)):  # fmt: skip
            if value:
                raise ConfigError(f"{key}={value} augments images; {cfg.data.name} is {kind} data: turn it off")
    spec = cfg.data.task_spec
    if (cfg.plots.score, cfg.plots.rows) != (spec.score, spec.rows):
        raise ConfigError(
            f"plots.score={cfg.plots.score}, plots.rows={cfg.plots.rows} do not draw a {task}'s "
            f"{spec.score} and {spec.rows}.csv; leave plots as conf/config.yaml picks them"
        )
    if task == "regression" and cfg.trainer.label_smoothing:
        raise ConfigError("trainer.label_smoothing smooths class labels; a regression has none: set it to 0")


def check_processes(cfg: Config) -> None:
    """A process layout Lightning cannot start: several processes without DDP, folds in several."""
    processes = cfg.trainer.devices * cfg.trainer.num_nodes
    if processes > 1 and cfg.trainer.strategy != "ddp":
        raise ConfigError(
            f"trainer.devices={cfg.trainer.devices} x trainer.num_nodes={cfg.trainer.num_nodes} processes need "
            "trainer.strategy=ddp; or set trainer.devices=1"
        )
    if processes > 1 and cfg.split.folds:
        raise ConfigError(f"split.folds={cfg.split.folds} cross-validates in one process; set trainer.devices=1")
