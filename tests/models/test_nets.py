"""Every model option adapts to the data; every optimizer, schedule and init works."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from tests.project import ROOT

from reprovision.config import MODEL_SCHEMAS, OPTIM_SCHEMAS, SCHEDULES, compose, validate
from reprovision.config.choices import MODEL_INPUTS
from reprovision.data.augment import flip_crop
from reprovision.models.nets import NET_INPUTS, NETS, build_net, init_weights
from reprovision.models.optimizers import OPTIMIZERS, lr_factor
from reprovision.models.text import MultiHot, TextCNN

MODEL_OPTIONS = sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml") if not p.stem.startswith("_"))
OPTIM_OPTIONS = sorted(p.stem for p in (ROOT / "conf" / "optim").glob("*.yaml") if not p.stem.startswith("_"))


def model_kwargs(option: str) -> tuple[str, dict]:
    data = "data=imdb" if option == "text_cnn" else "data=digits"  # data the model reads
    model = dataclasses.asdict(validate(compose(ROOT / "conf", [f"model={option}", data])).model)
    return model.pop("name"), {k: v for k, v in model.items() if k != "init"}


IMAGE = [((1, 8, 8), 10), ((1, 28, 28), 10), ((3, 32, 32), 2)]
VOCABULARY = ["<pad>", "<start>", "<unk>", "<unused>", *(f"w{i}" for i in range(20))]
INPUTS = [
    *({"kind": "image", "shape": list(shape), "mean": [0.0] * shape[0], "std": [1.0] * shape[0]} for shape, _ in IMAGE),
    {"kind": "table", "features": ["a", "b", "c", "d", "e"], "mean": [0.0] * 5, "std": [1.0] * 5},
    {"kind": "text", "vocabulary": VOCABULARY, "max_length": None},
]


def example_batch(inputs: dict) -> torch.Tensor:
    if inputs["kind"] == "image":
        return torch.randn(4, *inputs["shape"])
    if inputs["kind"] == "table":
        return torch.randn(4, len(inputs["features"]))
    ids = torch.randint(1, len(inputs["vocabulary"]), (4, 7), dtype=torch.int32)
    ids[0, 3:] = 0  # a short document, padded
    return ids


@pytest.mark.parametrize("option", MODEL_OPTIONS)
@pytest.mark.parametrize("inputs", INPUTS, ids=lambda i: i["kind"] + "x".join(map(str, i.get("shape", []))))
@pytest.mark.parametrize("outputs", [10, 1])
def test_every_model_runs_forward_and_backward_on_the_data_it_reads(option, inputs, outputs):
    name, kwargs = model_kwargs(option)
    if inputs["kind"] not in NET_INPUTS[name]:
        with pytest.raises(ValueError, match=f"does not read {inputs['kind']}"):
            build_net(name, inputs, outputs, **kwargs)
        return
    net = build_net(name, inputs, outputs, **kwargs)
    out = net(example_batch(inputs))
    assert out.shape == (4, outputs)
    out.logsumexp(1).mean().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_config_knows_what_each_model_reads():
    assert {n: k for n, k in NET_INPUTS.items() if k != ("image",)} == MODEL_INPUTS


def test_multi_hot_marks_each_word_once_and_never_padding():
    ids = torch.tensor([[1, 5, 5, 7, 0, 0], [1, 2, 0, 0, 0, 0]])
    out = MultiHot(8)(ids)
    assert out.tolist() == [[0, 1, 0, 0, 0, 1, 0, 1], [0, 1, 1, 0, 0, 0, 0, 0]]


def test_text_cnn_ignores_padding():
    torch.manual_seed(0)
    net = TextCNN(30, 2, embedding=8, channels=4, kernel=3, dropout=0.0).eval()
    short = torch.tensor([[1, 7, 9, 4]])
    padded = torch.tensor([[1, 7, 9, 4, 0, 0, 0, 0, 0]])
    torch.testing.assert_close(net(short), net(padded))


def test_every_option_has_a_schema_and_an_implementation():
    assert set(MODEL_OPTIONS) == set(MODEL_SCHEMAS) == set(NETS)
    assert set(OPTIM_OPTIONS) == set(OPTIM_SCHEMAS) == set(OPTIMIZERS)


@pytest.mark.parametrize("option", OPTIM_OPTIONS)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_optimizer_and_schedule_builds_and_steps(option, schedule):
    optim = dataclasses.asdict(
        validate(
            compose(ROOT / "conf", [f"optim={option}", f"optim.schedule={schedule}", "optim.warmup_epochs=1"])
        ).optim
    )
    weights = {}
    for fused in (None, True):  # torch's default (foreach) and the fused kernel the train stage picks
        torch.manual_seed(0)
        net = torch.nn.Linear(4, 2)
        before = net.weight.detach().clone()
        optimizer = OPTIMIZERS[option](net.parameters(), optim, fused)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, 5, 20, optim))
        for _ in range(3):
            net(torch.randn(8, 4)).pow(2).mean().backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        assert not torch.equal(net.weight, before)
        weights[fused] = net.weight.detach()
    torch.testing.assert_close(weights[True], weights[None])  # the same update, whichever kernel


def test_schedules_shape_the_learning_rate():
    o = {"warmup_epochs": 1, "step_epochs": 2, "gamma": 0.5}
    f = lambda kind, step: lr_factor(step, 10, 100, {**o, "schedule": kind})  # noqa: E731
    assert [f("constant", s) for s in (0, 9, 10, 99)] == [0.1, 1.0, 1.0, 1.0]  # warm-up over 10 steps
    assert [f("step", s) for s in (10, 19, 20, 45)] == [1.0, 1.0, 0.5, 0.25]
    assert f("cosine", 10) == 1.0 and math.isclose(f("cosine", 55), 0.5) and f("cosine", 100) < 1e-9
    assert f("one_cycle", 10) == 1.0 and math.isclose(f("one_cycle", 55), 0.5)


@pytest.mark.parametrize(("scheme", "std"), [("he", math.sqrt(2 / 400)), ("xavier", math.sqrt(2 / (400 + 300)))])
def test_initialisation_sets_the_published_scale(scheme, std):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(400, 300))
    init_weights(net, scheme)
    assert abs(net[0].weight.std().item() - std) / std < 0.05
    assert torch.count_nonzero(net[0].bias) == 0


def test_flip_and_crop_move_pixels_not_values():
    # Every pixel distinct: a flip or a shift shows, and each output pixel can be traced back.
    x = torch.arange(64 * 2 * 4 * 4, dtype=torch.float32).reshape(64, 2, 4, 4)
    torch.manual_seed(0)
    flipped = flip_crop(x, crop_padding=0, flip=True)
    mirrored = [torch.equal(f, i.flip(2)) for f, i in zip(flipped, x, strict=True)]
    kept = [torch.equal(f, i) for f, i in zip(flipped, x, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))  # each image as it was, or mirrored
    assert 16 < sum(mirrored) < 48  # about half, one draw per image
    for f, i in zip(flipped, x, strict=True):  # the same pixel values, only moved
        assert torch.equal(f.flatten().sort().values, i.flatten().sort().values)

    cropped = flip_crop(x, crop_padding=1, flip=False)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    offsets = []
    for c, p in zip(cropped, padded, strict=True):  # each output is a 4x4 window of the padded image
        windows = [(i, j) for i in range(3) for j in range(3) if torch.equal(c, p[:, i : i + 4, j : j + 4])]
        assert len(windows) == 1
        offsets += windows
    assert len(set(offsets)) == 9  # every shift drawn, the unshifted (1, 1) among them


def test_resized_crops_zoom_into_a_box_of_the_drawn_share_of_each_image(monkeypatch):
    from reprovision.data import augment

    # Each pixel holds its column: a crop's values are the columns its box spans, spread over the width.
    x = torch.arange(32, dtype=torch.float32).expand(64, 3, 32, 32).contiguous()
    monkeypatch.setattr(augment, "RATIO", (1.0, 1.0))
    assert torch.equal(augment.resized_crop(x, (1.0, 1.0)), x)  # the whole image: every pixel as it was
    torch.manual_seed(0)
    crops = augment.resized_crop(x, (0.25, 0.25))  # a 16x16 box, anywhere in the image
    assert crops.shape == x.shape
    spans = crops[:, 0, 0, -1] - crops[:, 0, 0, 0]
    assert torch.all((spans > 14) & (spans < 16))  # 16 columns' worth, stretched over 32 pixels
    starts = crops[:, 0, 0, 0]
    assert starts.min() >= 0 and (starts + spans).max() <= 31 and starts.std() > 3  # inside, and moved about
    assert torch.equal(crops[:, 0], crops[:, 2])  # one box for the image's channels
    assert torch.allclose(crops[:, :, 0], crops[:, :, -1], atol=1e-4)  # every row the same columns: no skew
    monkeypatch.setattr(augment, "RATIO", (0.75, 4 / 3))
    crops = augment.resized_crop(x, (0.25, 0.25))
    spans = crops[:, 0, 0, -1] - crops[:, 0, 0, 0]
    assert spans.min() < 14 < 16 < spans.max()  # wider and narrower boxes of the same area
