"""The schema of each model and optimizer option, chosen by model.name / optim.name."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from reprovision.config.rules import fraction, positive_ints, require

INITS = ("default", "he", "xavier")  # default: PyTorch's own initialisation of each layer


# One schema per model option; the keys are the names in models.nets.NETS.
@dataclass
class ModelConfig:
    name: str = MISSING
    init: str = MISSING  # weight initialisation: default | he | xavier

    def __post_init__(self) -> None:
        require(self.init in INITS, "model.init", self.init, "one of " + ", ".join(INITS))


@dataclass
class CNNConfig(ModelConfig):
    channels: list[int] = MISSING
    hidden: int = MISSING
    dropout: float = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_ints("model.channels", self.channels)
        require(self.hidden >= 1, "model.hidden", self.hidden, "an integer >= 1")
        fraction("model.dropout", self.dropout)


@dataclass
class MLPConfig(ModelConfig):
    hidden: list[int] = MISSING
    dropout: float = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        require(all(h >= 1 for h in self.hidden), "model.hidden", self.hidden, "a list of positive integers")
        fraction("model.dropout", self.dropout)


@dataclass
class TFCNNConfig(ModelConfig):
    channels: list[int] = MISSING
    hidden: int = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_ints("model.channels", self.channels)
        require(self.hidden >= 1, "model.hidden", self.hidden, "an integer >= 1")


@dataclass
class KerasCNNConfig(TFCNNConfig):
    conv_dropout: float = MISSING
    dense_dropout: float = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        fraction("model.conv_dropout", self.conv_dropout)
        fraction("model.dense_dropout", self.dense_dropout)


@dataclass
class TanhCNNConfig(TFCNNConfig):
    dropout: float = MISSING  # Dropout2d after each pooling
    batch_norm: bool = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        fraction("model.dropout", self.dropout)


@dataclass
class FastCNNConfig(ModelConfig):
    widths: list[int] = MISSING  # the three conv-BN-GELU groups' widths

    def __post_init__(self) -> None:
        super().__post_init__()
        require(len(self.widths) == 3 and min(self.widths) >= 1, "model.widths", self.widths, "three positive integers")


@dataclass
class TextCNNConfig(ModelConfig):
    embedding: int = MISSING  # the width of each word's vector
    channels: int = MISSING  # convolution filters
    kernel: int = MISSING  # words each filter reads at once
    dropout: float = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_ints("model.embedding", [self.embedding])
        positive_ints("model.channels", [self.channels])
        require(self.kernel >= 1 and self.kernel % 2 == 1, "model.kernel", self.kernel, "an odd integer >= 1 (centred)")
        fraction("model.dropout", self.dropout)


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
    "text_cnn": TextCNNConfig,
}
# What each model reads (models.nets.NET_INPUTS, kept equal by a test): the rest read images only.
MODEL_INPUTS = {"mlp": ("image", "table", "text"), "text_cnn": ("text",)}


# Learning rate over training, after `warmup_epochs` of linear warm-up from 0:
# constant; step (x gamma every step_epochs); cosine (to 0); one_cycle (linearly to 0).
SCHEDULES = ("constant", "step", "cosine", "one_cycle")


# One schema per optimizer option; the keys are the names in models.optimizers.OPTIMIZERS.
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
        require(self.lr > 0, "optim.lr", self.lr, "a number > 0")
        require(self.weight_decay >= 0, "optim.weight_decay", self.weight_decay, "a number >= 0")
        require(self.schedule in SCHEDULES, "optim.schedule", self.schedule, "one of " + ", ".join(SCHEDULES))
        require(self.warmup_epochs >= 0, "optim.warmup_epochs", self.warmup_epochs, "a number >= 0")
        require(self.step_epochs >= 1, "optim.step_epochs", self.step_epochs, "an integer >= 1")
        require(0 < self.gamma <= 1, "optim.gamma", self.gamma, "0 < x <= 1")


@dataclass
class MomentumConfig(SGDConfig):  # momentum and nesterov
    momentum: float = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        fraction("optim.momentum", self.momentum)


@dataclass
class RMSpropConfig(MomentumConfig):
    alpha: float = MISSING  # smoothing of the squared-gradient average

    def __post_init__(self) -> None:
        super().__post_init__()
        fraction("optim.alpha", self.alpha)


@dataclass
class AdamConfig(SGDConfig):  # adam and adamw
    betas: list[float] = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
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
