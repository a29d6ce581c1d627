"""Plain nn.Modules, built from a name and plain keyword arguments; no Lightning here."""

from __future__ import annotations

from torch import nn


class SmallCNN(nn.Module):
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
        super().__init__()
        layers: list[nn.Module] = []
        c_in, (h, w) = in_channels, image_size
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            if min(h, w) >= 2:  # pool while there is something left to pool
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * h * w, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.head(self.features(x))


class MLP(nn.Module):
    """Dense ReLU layers of the given widths on flattened pixels."""

    def __init__(
        self,
        in_channels: int,
        image_size: tuple[int, int],
        num_classes: int,
        *,
        hidden: list[int],
        dropout: float,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * image_size[0] * image_size[1]
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


NETS: dict[str, type[nn.Module]] = {"cnn": SmallCNN, "mlp": MLP}


def build_net(name: str, image_shape: list[int], num_classes: int, **kwargs) -> nn.Module:
    """The one place a config name becomes a network. `image_shape` is (C, H, W)."""
    c, h, w = image_shape
    return NETS[name](c, (h, w), num_classes, **kwargs)
