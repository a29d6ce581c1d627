"""Plain nn.Modules, built from a name, the data they read and plain keyword arguments; no Lightning here."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from reprovision.models.text import MultiHot, TextCNN


def _pooled(size: tuple[int, int], times: int) -> tuple[int, int]:
    """Spatial size after `times` 2x2 max-pools (floor), never below 1."""
    h, w = size
    for _ in range(times):
        h, w = max(h // 2, 1), max(w // 2, 1)
    return h, w


def _pool(h: int, w: int) -> nn.Module:
    # Tiny inputs (8x8 after two pools) keep their last pixel instead of vanishing.
    return nn.MaxPool2d(2) if min(h, w) >= 2 else nn.Identity()


class ConvThenDense(nn.Module):
    """Conv blocks, each followed by a 2x2 max-pool while the image is big enough, then one
    hidden dense layer and the class scores. `block(c_in, c_out, pool)` returns a block's layers."""

    def __init__(
        self,
        in_channels: int,
        image_size: tuple[int, int],
        num_classes: int,
        channels: list[int],
        hidden: int,
        block: Callable[[int, int, nn.Module], list[nn.Module]],
        activation: type[nn.Module] = nn.ReLU,
        dense_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in, (h, w) = in_channels, image_size
        for c in channels:
            layers += block(c_in, c, _pool(h, w))
            h, w = _pooled((h, w), 1)
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * h * w, hidden),
            activation(),
            nn.Dropout(dense_dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.head(self.features(x))


class SmallCNN(ConvThenDense):
    """conv3x3-BN-ReLU-maxpool per entry of `channels`, then a dense head."""

    def __init__(
        self,
        in_channels: int,
        image_size: tuple[int, int],
        num_classes: int,
        *,
        channels: list[int],
        hidden: int,
        dropout: float,
    ) -> None:
        def block(c_in: int, c: int, pool: nn.Module) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(), pool]

        super().__init__(in_channels, image_size, num_classes, channels, hidden, block, dense_dropout=dropout)


class MLP(nn.Module):
    """Dense ReLU layers of the given widths on `in_features` inputs: flattened pixels, a table's
    normalised row, or a text's multi-hot vector (`first` turns the input into those)."""

    def __init__(
        self, in_features: int, outputs: int, *, hidden: list[int], dropout: float, first: nn.Module | None = None
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [first or nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, outputs))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


class TFCNN(ConvThenDense):
    """The classic MNIST CNN: conv5x5-ReLU-maxpool per entry of `channels`, dense, classes."""

    def __init__(
        self,
        in_channels: int,
        image_size: tuple[int, int],
        num_classes: int,
        *,
        channels: list[int],
        hidden: int,
        conv_dropout: float = 0.0,
        dense_dropout: float = 0.0,
        kernel: int = 5,
    ) -> None:
        def block(c_in: int, c: int, pool: nn.Module) -> list[nn.Module]:
            layers = [nn.Conv2d(c_in, c, kernel, padding=kernel // 2), nn.ReLU(), pool]
            return [*layers, nn.Dropout(conv_dropout)] if conv_dropout else layers

        super().__init__(in_channels, image_size, num_classes, channels, hidden, block, dense_dropout=dense_dropout)


class KerasCNN(TFCNN):
    """The classic CIFAR-10 CNN: conv3x3 32 -> pool -> dropout -> conv 64 -> pool -> dropout ->
    dense 512 -> dropout -> classes."""

    def __init__(
        self,
        in_channels: int,
        image_size: tuple[int, int],
        num_classes: int,
        *,
        channels: list[int],
        hidden: int,
        conv_dropout: float,
        dense_dropout: float,
    ) -> None:
        super().__init__(
            in_channels,
            image_size,
            num_classes,
            channels=channels,
            hidden=hidden,
            conv_dropout=conv_dropout,
            dense_dropout=dense_dropout,
            kernel=3,
        )


class TanhCNN(ConvThenDense):
    """The birds-versus-airplanes chapter's nets: conv3x3 (BN) tanh maxpool (Dropout2d) blocks,
    a tanh dense layer, classes. Net, NetWidth, NetDropout and NetBatchNorm are its settings."""

    def __init__(
        self,
        in_channels: int,
        image_size: tuple[int, int],
        num_classes: int,
        *,
        channels: list[int],
        hidden: int,
        dropout: float,
        batch_norm: bool,
    ) -> None:
        def block(c_in: int, c: int, pool: nn.Module) -> list[nn.Module]:
            norm = [nn.BatchNorm2d(c)] if batch_norm else []
            drop = [nn.Dropout2d(dropout)] if dropout else []
            return [nn.Conv2d(c_in, c, 3, padding=1), *norm, nn.Tanh(), pool, *drop]

        super().__init__(in_channels, image_size, num_classes, channels, hidden, block, activation=nn.Tanh)


def resnet18(in_channels: int, image_size: tuple[int, int], num_classes: int) -> nn.Module:
    """torchvision's ResNet-18 with a CIFAR stem: a 3x3 stride-1 first conv and no max-pool,
    so 32x32 (and 8x8) inputs keep their resolution into the residual stages."""
    from torchvision.models import resnet18 as torchvision_resnet18

    net = torchvision_resnet18(num_classes=num_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


class Residual(nn.Module):
    """x + f(x): the block learns a correction, and gradients have a short path back."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.body(x)


class FastCNN(nn.Module):
    """A fast residual CNN in the spirit of the CIFAR-10 speed runs: a conv stem, three groups of
    conv-maxpool-BN-GELU followed by a residual conv-BN-GELU, a global max-pool and a linear head
    scaled down (small logits early in training steady the first steps)."""

    def __init__(self, in_channels: int, image_size: tuple[int, int], num_classes: int, *, widths: list[int]) -> None:
        super().__init__()

        def conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU()]

        stem = widths[0] // 2
        layers: list[nn.Module] = [nn.Conv2d(in_channels, stem, 3, padding=1, bias=False), nn.GELU()]
        c_in, (h, w) = stem, image_size
        for c in widths:
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), _pool(h, w), nn.BatchNorm2d(c), nn.GELU()]
            layers.append(Residual(*conv_bn(c, c)))
            h, w = _pooled((h, w), 1)
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_classes, bias=False)
        self.scale = 1 / 9  # logit scale, as the speed-run recipes do

    def forward(self, x):
        x = self.features(x).amax(dim=(2, 3))
        return self.head(x) * self.scale


# Nets over images (N, C, H, W), built as NET(in_channels, (H, W), outputs, **settings).
IMAGE_NETS: dict[str, Callable[..., nn.Module]] = {
    "cnn": SmallCNN,
    "tf_cnn": TFCNN,
    "keras_cnn": KerasCNN,
    "net": TanhCNN,
    "net_width": TanhCNN,
    "net_dropout": TanhCNN,
    "net_batchnorm": TanhCNN,
    "resnet18": resnet18,
    "fast_cnn": FastCNN,
}
NETS = (*IMAGE_NETS, "mlp", "text_cnn")
# What each net reads; config/choices.py spells the same table for its one-line errors.
NET_INPUTS = {**{name: ("image",) for name in IMAGE_NETS}, "mlp": ("image", "table", "text"), "text_cnn": ("text",)}


def init_weights(net: nn.Module, scheme: str) -> None:
    """He (Kaiming normal, for ReLU-family nets) or Xavier (uniform, for tanh) initialisation of
    every conv and linear weight, zero biases; `default` keeps PyTorch's own."""
    if scheme == "default":
        return
    for m in net.modules():
        if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Linear):
            if scheme == "he":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build_net(name: str, inputs: dict, outputs: int, **kwargs) -> nn.Module:
    """The one place a config name becomes a network for the normalise stage's `inputs`: an
    image's (C, H, W) `shape`, a table's `features`, a text's `vocabulary`."""
    kind = inputs["kind"]
    if kind not in NET_INPUTS.get(name, ()):
        raise ValueError(f"model {name!r} does not read {kind} data")
    if name == "text_cnn":
        return TextCNN(len(inputs["vocabulary"]), outputs, **kwargs)
    if kind == "image":
        c, h, w = inputs["shape"]
        return MLP(c * h * w, outputs, **kwargs) if name == "mlp" else IMAGE_NETS[name](c, (h, w), outputs, **kwargs)
    if kind == "table":
        return MLP(len(inputs["features"]), outputs, **kwargs)
    num_words = len(inputs["vocabulary"])
    return MLP(num_words, outputs, first=MultiHot(num_words), **kwargs)
