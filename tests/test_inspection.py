"""Inspection maps and attributions: right shapes, and each one shows a property a user reads it for."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from reprovision import inspection
from reprovision.models.nets import build_net

CNN = {"channels": [16, 32], "hidden": 64, "dropout": 0.0}  # conf/model/cnn.yaml, no dropout


def image(shape: list[int]) -> dict:
    return {"kind": "image", "shape": shape}


@pytest.fixture(scope="module")
def digits_model():
    """A small CNN trained for a few seconds on scikit-learn's digits, and held-out images."""
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    x = (x - x[:1200].mean()) / x[:1200].std()
    y = torch.tensor(digits.target)
    net = build_net("cnn", image([1, 8, 8]), 10, **CNN)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(15):
        for i in torch.randperm(1200).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(x[i]), y[i]).backward()
            optimizer.step()
    net.eval()
    held_out, labels = x[1200:1264], y[1200:1264]
    right = net(held_out).argmax(1) == labels
    assert right.float().mean() > 0.9  # a model worth explaining
    return net, held_out[right], labels[right]


class LeftHalfOnly(nn.Module):
    """A conv net that sees only the left half of its input."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        visible = torch.zeros_like(x)
        visible[..., : x.shape[-1] // 2] = x[..., : x.shape[-1] // 2]
        return self.net(visible)


def test_saliency_is_zero_where_the_model_cannot_see():
    torch.manual_seed(0)
    model = LeftHalfOnly(build_net("cnn", image([3, 8, 8]), 4, **CNN)).eval()
    x = torch.randn(5, 3, 8, 8)
    maps = inspection.saliency(model, x, torch.tensor([0, 1, 2, 3, 0]))
    assert maps.shape == (5, 8, 8)
    assert torch.all(maps[..., 4:] == 0)
    assert torch.all(maps[..., :4].sum(dim=(1, 2)) > 0)


def test_grad_cam_has_the_image_size_and_lights_up_where_the_evidence_is():
    torch.manual_seed(0)

    class BrightnessScore(nn.Module):
        """Class 0's score is the total of a brightness detector's feature maps."""

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
            nn.init.uniform_(self.conv.weight, 0.1, 1.0)
            self.head = nn.Linear(4, 2)
            nn.init.uniform_(self.head.weight, 0.1, 1.0)

        def forward(self, x):
            return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))

    x = torch.zeros(3, 1, 16, 16)
    x[0, 0, 2:5, 2:5] = 1  # a bright square top left
    x[1, 0, 10:13, 9:12] = 1  # bottom right
    x[2, 0, 2:5, 11:14] = 1  # top right
    cam = inspection.grad_cam(BrightnessScore().eval(), x, torch.zeros(3).long())
    assert cam.shape == (3, 16, 16)
    assert torch.all(cam >= 0)
    for n, (r, c) in enumerate([(3, 3), (11, 10), (3, 12)]):
        peak = divmod(int(cam[n].argmax()), 16)
        assert abs(peak[0] - r) <= 2 and abs(peak[1] - c) <= 2, (n, peak)
        far = (slice(r + 5, None) if r < 8 else slice(None, r - 5), slice(None))
        assert torch.all(cam[n][far] == 0)  # no evidence there, no heat
    assert (
        inspection.grad_cam(
            build_net("mlp", image([1, 8, 8]), 10, hidden=[32], dropout=0.0), x[:, :, :8, :8], torch.zeros(3).long()
        )
        is None
    )


def test_occluding_the_most_salient_square_lowers_the_true_class_probability(digits_model):
    net, x, y = digits_model
    window, stride = inspection.occlusion_window(8, 0.25)
    assert (window, stride) == (2, 1)
    drop = inspection.occlusion(net, x, y, window, stride)
    assert drop.shape == (len(x), 8, 8)
    saliency = inspection.saliency(net, x, y)

    def probability_without(square_of: torch.Tensor) -> torch.Tensor:
        """True-class probability with the 2x2 square around each image's chosen pixel set to 0."""
        hidden = x.clone()
        for n, flat in enumerate(square_of):
            r, c = divmod(int(flat), 8)
            r, c = min(r, 6), min(c, 6)
            hidden[n, :, r : r + 2, c : c + 2] = 0
        with torch.no_grad():
            return torch.softmax(net(hidden), 1)[torch.arange(len(x)), y]

    with torch.no_grad():
        before = torch.softmax(net(x), 1)[torch.arange(len(x)), y]
    most = probability_without(saliency.flatten(1).argmax(1))
    least = probability_without(saliency.flatten(1).argmin(1))
    # The trained net differs in its last bits from one CPU to another (0.046 and 0.013 on an AMD
    # EPYC here): the bar is a clear drop, and above all one several times the least salient's.
    assert (before - most).mean() > 0.03
    assert (before - most).mean() > 3 * (before - least).mean()
    # The occlusion map agrees: its peak is a square whose hiding costs the class.
    assert torch.all(drop.flatten(1).max(1).values > 0)


def test_first_conv_filters_and_none_for_dense_nets():
    net = build_net("cnn", image([3, 32, 32]), 10, **CNN)
    filters = inspection.first_conv_filters(net)
    first = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    assert filters.shape == tuple(first.weight.shape)
    assert inspection.first_conv_filters(build_net("mlp", image([3, 32, 32]), 10, hidden=[32], dropout=0.0)) is None


def test_examples_are_seeded_and_split_into_correct_and_wrong():
    actual = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    predicted = np.array([0, 1, 1, 0, 2, 2, 0, 1, 0, 0])
    a = inspection.select_examples(actual, predicted, 3, seed=7)
    assert np.array_equal(a["correct"], inspection.select_examples(actual, predicted, 3, seed=7)["correct"])
    assert all(actual[i] == predicted[i] for i in a["correct"]) and len(a["correct"]) == 3
    assert sorted(a["wrong"]) == [2, 4, 8]  # only three wrong: all of them


def test_top_confused_pairs_are_off_diagonal_largest_first():
    matrix = np.array([[9, 3, 0], [1, 8, 5], [0, 3, 7]])
    assert inspection.top_confused_pairs(matrix, 2) == [(1, 2, 5), (0, 1, 3)]


# Text and tables: integrated gradients.

VOCABULARY = ["<pad>", "<start>", "<unk>", "<unused>", "good", "bad", "the", "plot"]


def text_model(net: dict, classes: int = 2) -> nn.Module:
    torch.manual_seed(0)
    inputs = {"kind": "text", "vocabulary": VOCABULARY, "max_length": None}
    return build_net(net.pop("name"), inputs, classes, **net).eval()


def test_multi_hot_attributions_follow_the_weights_and_add_up_over_distinct_words():
    net = text_model({"name": "mlp", "hidden": [4], "dropout": 0.0})
    first, last = net.layers[1], net.layers[-1]
    with torch.no_grad():
        first.weight.zero_()
        first.bias.fill_(1.0)  # the hidden unit stays on: the net is linear along the path
        first.weight[0, VOCABULARY.index("good")] = 3.0
        first.weight[0, VOCABULARY.index("bad")] = -0.5
        last.weight.zero_()
        last.weight[1, 0] = 1.0
    ids = torch.tensor([[1, 4, 6, 4, 5, 0, 0], [1, 7, 6, 0, 0, 0, 0]])  # <start> good the good bad; <start> plot the
    scores = inspection.word_attributions(net, ids, torch.tensor([1, 1]))
    assert scores.shape == ids.shape
    assert torch.allclose(scores[0], torch.tensor([0.0, 3.0, 0.0, 3.0, -0.5, 0.0, 0.0]), atol=1e-4)
    assert torch.all(scores[1] == 0)  # words the class ignores
    # Explaining the other class, whose score ignores every word: nothing.
    assert torch.all(inspection.word_attributions(net, ids, torch.tensor([0, 0])).abs() < 1e-6)
    # Over distinct words, a document's attributions add up to its score minus the blank document's.
    with torch.no_grad():
        gained = net(ids)[:, 1] - net(torch.zeros_like(ids))[:, 1]
    distinct = torch.stack([scores[n][_first_occurrences(ids[n])].sum() for n in range(2)])
    assert torch.allclose(distinct, gained, atol=1e-3)


def _first_occurrences(row: torch.Tensor) -> list[int]:
    seen: set[int] = set()
    return [i for i, w in enumerate(row.tolist()) if not (w in seen or seen.add(w))]


def test_embedding_attributions_add_up_and_skip_padding_and_words_without_a_vector():
    net = text_model({"name": "text_cnn", "embedding": 6, "channels": 5, "kernel": 3, "dropout": 0.0}, classes=3)
    with torch.no_grad():
        net.embed.weight[VOCABULARY.index("the")] = 0.0  # a word the net cannot tell from padding
    ids = torch.tensor([[1, 4, 6, 7, 5, 0], [1, 6, 5, 4, 0, 0]])
    target = torch.tensor([2, 0])
    scores = inspection.word_attributions(net, ids, target)
    assert scores.shape == ids.shape
    assert torch.all(scores[ids == 0] == 0) and torch.all(scores[ids == 6] == 0)
    assert torch.all(scores.abs().sum(dim=1) > 0)  # (a word no filter's maximum picks gets 0 too)
    # The path starts from every word's vector at zero, padding kept where it is.
    blank = net.embed.register_forward_hook(lambda module, args, out: torch.zeros_like(out))
    with torch.no_grad():
        start = net(ids)[torch.arange(2), target]
    blank.remove()
    with torch.no_grad():
        end = net(ids)[torch.arange(2), target]
    assert torch.allclose(scores.sum(dim=1), end - start, atol=0.02 * float((end - start).abs().max()))


def test_feature_attributions_of_a_linear_model_are_weight_times_value():
    weights = torch.tensor([[2.0, -1.0, 0.0], [0.5, 0.0, 3.0]])
    linear = nn.Linear(3, 2, bias=True)
    with torch.no_grad():
        linear.weight.copy_(weights)
        linear.bias.fill_(7.0)
    rows = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0, 1, 0, 1, 1])
    scores = inspection.feature_attributions(linear, rows, target, chunk=2)  # chunks keep each row's target
    assert torch.allclose(scores, rows * weights[target], atol=1e-5)

    class Value(nn.Module):  # a regression: one value per row, no class to choose
        def forward(self, x):
            return linear(x)[:, 1]

    assert torch.allclose(inspection.feature_attributions(Value(), rows, chunk=3), rows * weights[1], atol=1e-5)
