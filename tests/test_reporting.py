"""report stage: the page shows the run's own numbers and mistakes, for each task and kind of input;
each explanation points at what the model really depends on; words and names from data are escaped."""

from __future__ import annotations

import base64
import dataclasses
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from reprovision import report_plots
from reprovision.cli import main
from reprovision.config import compose, load_config
from reprovision.data.normalise import normalise
from reprovision.data.raw import RESERVED_WORDS, START
from reprovision.data.shards import load_split, save_split
from reprovision.evaluation import write_classification, write_regression
from reprovision.files import write_csv, write_json
from reprovision.models.module import Model
from reprovision.reporting.images import inspection_html

NETS = {
    "cnn": {"name": "cnn", "init": "default", "channels": [8, 16], "hidden": 32, "dropout": 0.0},
    "mlp": {"name": "mlp", "init": "default", "hidden": [8], "dropout": 0.0},
    "text_cnn": {"name": "text_cnn", "init": "default", "embedding": 8, "channels": 8, "kernel": 3, "dropout": 0.0},
}
RED, BLUE = "214, 39, 40", "31, 119, 180"  # for and against the prediction


def image_model(net: dict, shape: list[int]) -> Model:
    inputs = {"kind": "image", "shape": shape, "mean": [0.5] * shape[0], "std": [0.25] * shape[0]}
    torch.manual_seed(0)
    return Model(net=net, optim={}, task="classification", classes=["a", "b", "c"], inputs=inputs).eval()


def save_model(directory: Path, model: Model) -> None:
    """A checkpoint as train writes it: plain hyperparameters and the weights."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({"hyper_parameters": dict(model.hparams), "state_dict": model.state_dict()}, directory / "model.ckpt")


def predictions(n: int) -> list[dict[str, str]]:
    # Every third image wrong, so there are correct and wrong ones to inspect.
    return [{"index": str(i), "actual": "abc"[i % 3], "predicted": "abc"[(i + (i % 3 == 0)) % 3]} for i in range(n)]


def images_in(page: str) -> list[str]:
    return re.findall(r'<img alt="([^"]*)"', page)


def between(page: str, start: str, end: str = "<h2>") -> str:
    """The part of the page from `start` to the next `end` (a section, by default)."""
    i = page.index(start)
    return page[i : page.index(end, i + len(start))]


def table_rows(html: str) -> list[list[str]]:
    return [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(<td>.*?)</tr>", html)]


def split_summary(task: str = "classification", classes=("a", "b", "c"), val: int = 40, **fields) -> dict:
    """summary.json as the split stage writes it, `val` validation examples (spread over the classes)."""
    summary = {"task": task, "classes": list(classes), "sizes": {"train": 160, "val": val, "test": 20}, **fields}
    if task == "classification":
        summary["class_counts"] = {"val": {c: val // len(classes) for c in classes}}
    return summary


def write_training(metrics: Path, score: str) -> None:
    """train.json and curves.csv as the train stage writes them, for the task's score."""
    write_json(metrics / "train.json", {"epochs": 2, "best_epoch": 2, f"val/{score}": 0.9})
    columns = ["epoch", "train/loss", f"train/{score}", "val/loss", f"val/{score}", "train/lr"]
    curves = [dict(zip(columns, (e, 1 / e, 0.5, 1 / e, 0.9, 0.01), strict=True)) for e in (1, 2)]
    write_csv(metrics / "curves.csv", curves, columns)


def render(tmp_path: Path, root: Path, overrides: list[str], capsys, data: bool = False) -> str:
    """The report stage as `dvc repro` runs it, on the run's files under tmp_path."""
    (tmp_path / "params.yaml").write_text(OmegaConf.to_yaml(compose(root / "conf", overrides)))
    argv = ["report", "--params", str(tmp_path / "params.yaml"), "--metrics", str(tmp_path / "metrics")]
    argv += ["--split", str(tmp_path / "split"), "--model", str(tmp_path / "models")]
    argv += ["--data", str(tmp_path / "normalised")] if data else []
    argv += ["--run", str(tmp_path / "no-run.json"), "--out", str(tmp_path / "report")]
    assert main(argv) == 0, capsys.readouterr().err
    return (tmp_path / "report" / "index.html").read_text()


# Images: what the page has always shown.


@pytest.mark.parametrize("channels", [1, 3])
def test_conv_nets_get_every_map_and_their_filters(root, channels):
    cfg = load_config(root / "params.yaml")
    images = np.random.default_rng(0).integers(0, 256, size=(12, channels, 16, 16), dtype=np.uint8)
    page = inspection_html(cfg, image_model(NETS["cnn"], [channels, 16, 16]), images, predictions(12))
    assert images_in(page) == ["correct maps", "wrong maps", "first conv layer filters"]
    assert "8 filters of 3x3" in page


def test_dense_nets_say_why_grad_cam_and_filters_are_missing(root):
    cfg = load_config(root / "params.yaml")
    images = np.random.default_rng(0).integers(0, 256, size=(12, 1, 8, 8), dtype=np.uint8)
    page = inspection_html(cfg, image_model(NETS["mlp"], [1, 8, 8]), images, predictions(12))
    assert images_in(page) == ["correct maps", "wrong maps"]
    assert "No Grad-CAM" in page and "No filters" in page


def test_every_inspection_switch_off_leaves_no_images(root):
    cfg = load_config(root / "params.yaml")
    off = dataclasses.replace(cfg.report, saliency=False, grad_cam=False, occlusion=False, filters=False)
    cfg = dataclasses.replace(cfg, report=off)
    images = np.random.default_rng(0).integers(0, 256, size=(12, 1, 8, 8), dtype=np.uint8)
    assert images_in(inspection_html(cfg, image_model(NETS["cnn"], [1, 8, 8]), images, predictions(12))) == []


@pytest.mark.parametrize("gallery_size", [2, 16])
def test_the_page_shows_eval_json_and_exactly_the_most_confident_mistakes(tmp_path, root, gallery_size, capsys):
    """12 test images, 4 of them wrong."""
    save_model(tmp_path / "models", image_model(NETS["mlp"], [1, 8, 8]))
    (tmp_path / "split").mkdir()
    images = np.random.default_rng(0).integers(0, 256, size=(12, 1, 8, 8), dtype=np.uint8)
    save_split(tmp_path / "split", "test", images, np.arange(12) % 3)
    write_json(tmp_path / "split" / "summary.json", split_summary(val=12))  # 4 a class: too few to choose well
    metrics = tmp_path / "metrics"
    (metrics / "evaluation").mkdir(parents=True)
    rows = predictions(12)  # wrong: #0, #3, #6, #9; the later, the more confident
    for p in rows:
        p["confidence"] = f"{0.5 + int(p['index']) / 40:.6f}"
        p.update({f"p_{c}": p["confidence"] if c == p["predicted"] else "0.1" for c in "abc"})
    write_csv(
        metrics / "evaluation" / "predictions.csv",
        rows,
        ["index", "actual", "predicted", "confidence", "p_a", "p_b", "p_c"],
    )
    matrix = np.zeros((3, 3), int)
    for p in rows:
        matrix["abc".index(p["actual"]), "abc".index(p["predicted"])] += 1
    write_json(
        metrics / "evaluation" / "confusion_matrix.json", {"classes": ["a", "b", "c"], "matrix": matrix.tolist()}
    )
    per_class = [
        {"class": c, "precision": 0.5, "recall": 0.75, "f1": 0.6, "support": 4, "mlflow_name": c} for c in "abc"
    ]
    write_csv(metrics / "evaluation" / "per_class.csv", per_class, list(per_class[0]))
    baseline = {
        "baseline/logistic/test/acc": 0.5,
        "baseline/majority/test/acc": 1 / 3,
        "baseline/margin/test/acc": 1 / 6,
    }
    write_json(metrics / "eval.json", {"test/acc": 8 / 12, "test/f1_macro": 0.65, "test/loss": 0.8, **baseline})
    write_training(metrics, "acc")

    overrides = ["model=mlp", "model.hidden=[8]", f"report.gallery_size={gallery_size}", "report.examples=2"]
    page = render(tmp_path, root, overrides, capsys)

    assert re.search(r"<tr><th>test/acc</th><td>([^<]*)</td></tr>", page)[1] == "0.6667"  # eval.json's
    assert re.search(r"<tr><th>best epoch \(val/acc\)</th><td>2</td></tr>", page)
    shown = dict(re.findall(r"<tr><th>((?:baseline|margin)[^<]*)</th><td>([^<]*)</td></tr>", page))
    assert shown == {"baseline: logistic regression": "test/acc 0.5000", "baseline: the majority class": "test/acc 0.3333",
                     "margin over the best baseline (test/acc)": "+0.1667"}  # fmt: skip
    note = re.search(r"<tr><th>validation split</th><td>([^<]*)</td></tr>", page)[1]
    assert note.startswith("12 validation examples, 4 of class &#x27;a&#x27; (the fewest; 20 would do): too few")
    assert "raise data.val_fraction" in note and "split.folds=5" in note
    assert "Misclassified test images (4 of 12;" in page
    gallery = between(page, '<div class="gallery">', "</div>")
    shown = [int(i) for i in re.findall(r"<figcaption>test #(\d+): ", gallery)]
    assert shown == [9, 6, 3, 0][:gallery_size]  # the most confident mistakes, no right answers
    pngs = [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]
    assert len(pngs) >= 5 + len(shown)  # curves, two confusion matrices, per-class, pairs, the gallery
    for png in pngs:
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG" and min(image.size) > 10
            image.load()  # the whole image decodes, not only its header


# Text: documents in words, and the words that pushed each prediction.

WORDS = ["zebra", "the", "movie", "great", "awful", "<script>", "plot", "rare"]  # the dataset's, from id 4
TRAIN = ["the movie great awful <script> plot", "the movie plot great", "awful the plot"] * 4
TEST = [  # (document, actual class); the model below predicts pos exactly when "great" is there
    ("the movie great plot", "pos"),
    ("the <script> movie great zebra", "neg"),  # wrong, the most confident
    ("awful the movie", "pos"),  # wrong, the least confident
    ("awful plot", "neg"),
    ("rare movie", "neg"),
    ("great great plot", "pos"),
    ("the plot great awful", "neg"),  # wrong; "awful" holds it back
]


def token_rows(documents: list[str]) -> np.ndarray:
    """Documents as the split stage stores them: START, then the dataset's ids, padded with 0."""
    ids = {w: i for i, w in enumerate([*RESERVED_WORDS, *WORDS])}
    rows = [[START, *(ids[w] for w in d.split())] for d in documents]
    out = np.zeros((len(rows), max(map(len, rows))), np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def write_text_split(tmp_path: Path, classes: list[str], test: list[tuple[str, str]]) -> dict:
    """data/split as the split stage writes it, and data/normalised by the real normalise stage;
    returns the fitted inputs (the vocabulary: the training split's words, so not zebra or rare)."""
    split = tmp_path / "split"
    split.mkdir()
    train_y = np.arange(len(TRAIN)) % len(classes)
    for name, docs, y in (("train", TRAIN, train_y), ("val", TRAIN[:3], train_y[:3])):
        save_split(split, name, token_rows(docs), y)
    test_y = np.array([classes.index(c) for _, c in test])
    save_split(split, "test", token_rows([d for d, _ in test]), test_y)
    write_json(split / "words.json", [*RESERVED_WORDS, *WORDS])
    write_json(split / "summary.json", split_summary(classes=classes, val=20 * len(classes), kind="text"))
    return normalise(split, tmp_path / "normalised", num_words=100)["inputs"]


def great_decides(inputs: dict) -> Model:
    """A multi-hot MLP whose one hidden unit counts "great" (+5) and "awful" (-2) and a little of
    "plot", "the" and "movie"; that unit votes pos. The other words weigh nothing."""
    model = Model(net=NETS["mlp"], optim={}, task="classification", classes=["neg", "pos"], inputs=inputs).eval()
    first, last = model.net.layers[1], model.net.layers[-1]
    with torch.no_grad():
        for p in (first.weight, first.bias, last.weight):
            p.zero_()
        for word, weight in {"great": 5.0, "awful": -2.0, "plot": 0.3, "the": 0.1, "movie": -0.1}.items():
            first.weight[0, inputs["vocabulary"].index(word)] = weight
        last.weight[:, 0] = torch.tensor([-2.0, 2.0])
        last.bias.copy_(torch.tensor([0.5, -0.5]))
    return model


def evaluate_text(tmp_path: Path, model: Model) -> None:
    """What the evaluate stage writes: the model's predictions on the encoded test split."""

    test = load_split(tmp_path / "normalised", "test")
    with torch.no_grad():
        logits = model(torch.from_numpy(test["x"]))
    write_classification(tmp_path / "metrics", logits, torch.from_numpy(test["y"]), model.hparams.classes)
    write_training(tmp_path / "metrics", "acc")


def spans(html: str) -> list[tuple[str, float, str]]:
    """(word, colour strength, colour) of each highlighted word."""
    found = re.findall(
        r'<span style="background: rgba\((\d+, \d+, \d+), ([\d.]+)\)" title="[^"]*">([^<]*)</span>', html
    )
    return [(word, float(alpha), rgb) for rgb, alpha, word in found]


@pytest.mark.parametrize("gallery_size", [2, 3])
def test_text_mistakes_show_their_words_escaped_most_confident_first(tmp_path, root, gallery_size, capsys):
    inputs = write_text_split(tmp_path, ["neg", "pos"], TEST)
    model = great_decides(inputs)
    save_model(tmp_path / "models", model)
    evaluate_text(tmp_path, model)
    overrides = ["data.name=imdb", "model=mlp", f"report.gallery_size={gallery_size}", "report.examples=0"]
    page = render(tmp_path, root, overrides, capsys, data=True)

    mistakes = between(page, "<h2>Misclassified test documents (3 of 7; most confident first)</h2>")
    shown = re.findall(r'<div class="doc" id="mistake-(\d+)">', mistakes)
    assert shown == ["1", "6", "2"][:gallery_size]
    # The dataset's own words, markup escaped; a right answer is not among the mistakes.
    assert '<p class="words">the &lt;script&gt; movie great zebra</p>' in mistakes
    assert "<script>" not in page
    assert "the movie great plot" not in mistakes
    assert "test #1: actual neg, predicted pos (100%)" in mistakes
    assert "<tr><th>test documents</th><td>7</td></tr>" in page


def test_the_decisive_word_gets_the_strongest_red_in_the_text_the_model_read(tmp_path, root, capsys):
    inputs = write_text_split(tmp_path, ["neg", "pos"], TEST)
    model = great_decides(inputs)
    save_model(tmp_path / "models", model)
    evaluate_text(tmp_path, model)
    page = render(tmp_path, root, ["data.name=imdb", "model=mlp", "report.examples=10"], capsys, data=True)

    words = between(page, "<h2>Words that pushed the prediction</h2>", "</body>")
    for index in ("0", "1", "5", "6"):  # every document predicted pos: "great" is why
        highlighted = spans(between(words, f'id="words-{index}"', "</div>"))
        strongest = max(highlighted, key=lambda s: s[1])
        assert strongest[0] == "great" and strongest[2] == RED and strongest[1] == 1.0, (index, highlighted)
    doc6 = dict((w, (a, c)) for w, a, c in spans(between(words, 'id="words-6"', "</div>")))
    assert doc6["awful"][1] == BLUE and doc6["awful"][0] == pytest.approx(0.4, abs=0.02)  # -2 against +5
    # What the model read: its vocabulary's words, zebra (not in it) as <unk>, markup escaped.
    doc1 = [w for w, _, _ in spans(between(words, 'id="words-1"', "</div>"))]
    assert doc1 == ["the", "&lt;script&gt;", "movie", "great", "&lt;unk&gt;"]
    assert "for: great (+10)" in between(words, 'id="words-1"', '<div class="doc"')


def test_text_cnn_pages_explain_every_word_of_the_chosen_documents(tmp_path, root, capsys):
    inputs = write_text_split(tmp_path, ["neg", "pos"], TEST)
    torch.manual_seed(0)
    model = Model(net=NETS["text_cnn"], optim={}, task="classification", classes=["neg", "pos"], inputs=inputs)
    save_model(tmp_path / "models", model.eval())
    evaluate_text(tmp_path, model)
    page = render(tmp_path, root, ["data.name=imdb", "model=text_cnn", "report.examples=1"], capsys, data=True)
    words = between(page, "<h2>Words that pushed the prediction</h2>", "</body>")
    explained = re.findall(r'id="words-(\d+)"', words)
    assert len(explained) == 2  # one correct, one wrong
    for index in explained:
        document = TEST[int(index)][0].replace("zebra", "<unk>").replace("rare", "<unk>")
        highlighted = spans(between(words, f'id="words-{index}"', "</div>"))
        assert [w for w, _, _ in highlighted] == document.replace("<", "&lt;").replace(">", "&gt;").split()
        assert max(a for _, a, _ in highlighted) == 1.0


def test_without_the_normalised_split_the_page_says_why_no_words_are_explained(tmp_path, root, capsys):
    inputs = write_text_split(tmp_path, ["neg", "pos"], TEST)
    model = great_decides(inputs)
    save_model(tmp_path / "models", model)
    evaluate_text(tmp_path, model)
    page = render(tmp_path, root, ["data.name=imdb", "model=mlp"], capsys)
    assert "needs the normalise stage's output (--data)" in page and "<span style" not in page


def test_46_classes_stay_readable_the_confused_pairs_as_a_table(tmp_path, root, capsys):
    classes = [f"topic{i}" for i in range(45)] + ["<b>acq"]
    confusions = {(3, 7): 5, (10, 2): 4, (0, 45): 3, (20, 21): 2, (30, 31): 1, (40, 41): 1}
    test = [(TEST[i % len(TEST)][0], classes[i % 46]) for i in range(92)]
    predicted = [i % 46 for i in range(92)]
    n = 0
    for (actual, guess), count in confusions.items():
        for _ in range(count):
            test.append((TEST[n % len(TEST)][0], classes[actual]))
            predicted.append(guess)
            n += 1
    inputs = write_text_split(tmp_path, classes, test)
    model = Model(net=NETS["mlp"], optim={}, task="classification", classes=classes, inputs=inputs).eval()
    save_model(tmp_path / "models", model)
    logits = torch.nn.functional.one_hot(torch.tensor(predicted), 46).float() * 4
    for rank, logit in ((2, 3.0), (3, 2.0)):  # a close second and third, never the actual class
        logits[torch.arange(len(predicted)), (torch.tensor(predicted) + rank) % 46] = logit
    actual = torch.tensor([classes.index(c) for _, c in test])
    write_classification(tmp_path / "metrics", logits, actual, classes)
    write_training(tmp_path / "metrics", "acc")
    overrides = ["data.name=reuters", "model=mlp", "report.confused_pairs=5", "report.gallery_size=20"]
    page = render(tmp_path, root, overrides, capsys, data=True)

    assert "(46 classes)" in page
    pairs = table_rows(between(page, "<h2>Most confused pairs (test documents)</h2>"))
    assert [row[:3] for row in pairs] == [
        ["topic3", "topic7", "5"],
        ["topic10", "topic2", "4"],
        ["topic0", "&lt;b&gt;acq", "3"],
        ["topic20", "topic21", "2"],
        ["topic30", "topic31", "1"],
    ]
    assert "<b>acq" not in page
    per_class = table_rows(between(page, "<h2>Accuracy of each class</h2>"))
    assert per_class[45][0] == "&lt;b&gt;acq" and per_class[45][-1] == "_b_acq"  # its name in MLflow
    mistakes = between(page, "<h2>Misclassified test documents")
    listed = re.findall(r'<div class="probs">([^<]*)</div>', mistakes)
    assert len(listed) == 16
    for probs in listed:  # the top three and the actual class, not 46
        assert len(probs.split(", ")) == 4


# Tables: misclassified rows, and a regression's errors and features.


def test_table_mistakes_show_each_rows_own_feature_values(tmp_path, root, capsys):
    features = ["x1", "<x2>"]
    inputs = {"kind": "table", "features": features, "mean": [0.0, 0.0], "std": [1.0, 1.0]}
    model = Model(net=NETS["mlp"], optim={}, task="classification", classes=["no", "yes"], inputs=inputs).eval()
    save_model(tmp_path / "models", model)
    rows = np.arange(12, dtype=np.float32).reshape(6, 2) * [1.5, -2.0]
    (tmp_path / "split").mkdir()
    save_split(tmp_path / "split", "test", rows.astype(np.float32), np.zeros(6, np.int64))
    write_json(
        tmp_path / "split" / "summary.json", split_summary(classes=["no", "yes"], kind="table", features=features)
    )
    actual = torch.tensor([0, 1, 0, 1, 0, 1])
    logits = torch.tensor([[2.0, 0], [1, 0], [0, 3], [0, 1], [0, 0.5], [0, 1]])  # wrong: 1 (73%), 2 (95%), 4
    write_classification(tmp_path / "metrics", logits, actual, ["no", "yes"])
    write_training(tmp_path / "metrics", "acc")
    overrides = ["data.name=table", "data.path=x.csv", "data.target=label", "data.task=classification"]
    page = render(tmp_path, root, [*overrides, "model=mlp", "report.gallery_size=2"], capsys)

    mistakes = between(page, "<h2>Misclassified test rows (3 of 6; most confident first)</h2>", "<h2>Features")
    assert "<th>&lt;x2&gt;</th>" in mistakes
    assert table_rows(mistakes) == [["2", "no", "yes", "95%", "6", "-10"], ["1", "yes", "no", "73%", "3", "-6"]]


def test_table_classification_ranks_the_feature_the_model_uses_and_explains_each_mistake(tmp_path, root, capsys):
    """Attributions of the predicted class's logit: <x2> alone decides `yes`, so it ranks first and a
    row predicted `yes` owes its logit to <x2> alone, weight x (value - mean) / std."""
    features = ["x1", "<x2>"]
    inputs = {"kind": "table", "features": features, "mean": [1.0, 2.0], "std": [2.0, 4.0]}
    model = Model(net=NETS["mlp"], optim={}, task="classification", classes=["no", "yes"], inputs=inputs).eval()
    first, last = model.net.layers[1], model.net.layers[-1]
    with torch.no_grad():
        for p in (first.weight, first.bias, last.weight, last.bias):
            p.zero_()
        first.weight[0] = torch.tensor([0.0, 2.0])  # the logit of yes: 10 + 2 <x2> (normalised); of no: 0
        first.bias[0], last.weight[1, 0] = 10.0, 1.0
    save_model(tmp_path / "models", model)
    rows = np.array([[0, 9], [5, 3], [-4, 1], [2, 8], [7, -2], [1, 6]], dtype=np.float32)
    (tmp_path / "split").mkdir()
    save_split(tmp_path / "split", "test", rows, np.zeros(6, np.int64))
    write_json(
        tmp_path / "split" / "summary.json", split_summary(classes=["no", "yes"], kind="table", features=features)
    )
    actual = torch.tensor([0, 1, 0, 1, 0, 1])
    logits = torch.tensor([[0.0, 3], [1, 0], [0, 1], [0, 1], [0, 0.5], [0, 1]])  # wrong: 0 (95%), 1 (73%), 2, 4
    write_classification(tmp_path / "metrics", logits, actual, ["no", "yes"])
    write_training(tmp_path / "metrics", "acc")
    overrides = ["data.name=table", "data.path=x.csv", "data.target=label", "data.task=classification"]
    page = render(tmp_path, root, [*overrides, "model=mlp", "report.gallery_size=2"], capsys)

    features_section = between(page, "<h2>Features that moved the predictions</h2>", "</body>")
    ranking = table_rows(between(features_section, '<table class="ranking">', "</table>"))
    assert [row[1] for row in ranking] == ["&lt;x2&gt;", "x1"]
    by_row = table_rows(between(features_section, '<table class="row-attributions">', "</table>"))
    assert [row[:2] for row in by_row] == [["0", "yes"], ["1", "no"]]  # the mistakes listed above, in order
    shown = [float(re.search(r">([-+\d.e]+)</span>", cell)[1]) for cell in by_row[0][2:]]
    assert shown == pytest.approx([0.0, 2.0 * (9 - 2.0) / 4.0], abs=0.01)  # yes's logit: <x2> alone
    shown = [float(re.search(r">([-+\d.e]+)</span>", cell)[1]) for cell in by_row[1][2:]]
    assert shown == pytest.approx([0.0, 0.0], abs=0.01)  # no's logit is constant: nothing moved it


def bmi_decides(inputs: dict) -> Model:
    """A regression MLP whose output is 10 + 3 bmi + 0.2 age + 0.1 <bp> (normalised), the one
    hidden unit kept in its linear range by a large bias."""
    model = Model(net=NETS["mlp"], optim={}, task="regression", classes=[], inputs=inputs).eval()
    first, last = model.net.layers[1], model.net.layers[-1]
    with torch.no_grad():
        for p in (first.weight, first.bias, last.weight, last.bias):
            p.zero_()
        first.weight[0] = torch.tensor([0.2, 3.0, 0.1])
        first.bias[0], last.weight[0, 0] = 10.0, 1.0
    return model


def test_regression_shows_the_largest_errors_first_and_ranks_the_feature_the_model_uses(tmp_path, root, capsys):
    features = ["age", "bmi", "<bp>"]
    inputs = {"kind": "table", "features": features, "mean": [50.0, 25.0, 90.0], "std": [10.0, 5.0, 15.0]}
    model = bmi_decides(inputs)
    save_model(tmp_path / "models", model)
    rows = (np.random.default_rng(0).normal(size=(20, 3)) * [10, 5, 15] + [50, 25, 90]).round(1).astype(np.float32)
    (tmp_path / "split").mkdir()
    save_split(tmp_path / "split", "test", rows, np.zeros(20, np.float32))
    write_json(
        tmp_path / "split" / "summary.json", split_summary("regression", (), 60, kind="table", features=features)
    )
    with torch.no_grad():
        predicted = model(model.preprocess(torch.from_numpy(rows)))
    errors = torch.full((20,), 0.5)
    errors[7], errors[2] = 9.0, -7.0
    write_regression(tmp_path / "metrics", predicted, predicted - errors, "progression")
    write_training(tmp_path / "metrics", "mae")
    page = render(tmp_path, root, ["data=diabetes", "model=mlp", "report.gallery_size=3"], capsys)

    assert re.search(r"<tr><th>best epoch \(val/mae\)</th><td>2</td></tr>", page)
    assert "<tr><th>test/rmse</th>" in page and "predicted vs actual and residuals" in page
    largest = table_rows(between(page, "<h2>Largest errors (3 of 20 test rows)</h2>"))
    assert [row[0] for row in largest] == ["7", "2", "0"]
    assert largest[0][4:] == [f"{v:.4g}" for v in rows[7]]  # the row's raw feature values
    features_section = between(page, "<h2>Features that moved the predictions</h2>", "</body>")
    ranking = table_rows(between(features_section, '<table class="ranking">', "</table>"))
    assert [row[1] for row in ranking] == ["bmi", "age", "&lt;bp&gt;"]
    by_row = between(features_section, '<table class="row-attributions">', "</table>")
    first = table_rows(by_row)[0]
    assert first[0] == "7"
    # The model is linear where the rows are: an attribution is weight x (value - mean) / std.
    expected = (rows[7] - [50, 25, 90]) / [10, 5, 15] * [0.2, 3.0, 0.1]
    shown = [float(re.search(r">([-+\d.e]+)</span>", cell)[1]) for cell in first[2:]]
    assert shown == pytest.approx(expected, rel=0.01)
    strengths = [float(re.search(r"rgba\([^)]*, ([\d.]+)\)", cell)[1]) for cell in first[2:]]
    assert strengths.index(max(strengths)) == 1  # bmi moved row 7 the most
    bmi_colour = RED if rows[7, 1] > 25 else BLUE  # above the mean bmi raises the prediction
    assert bmi_colour in first[3]


def test_the_feature_chart_draws_the_features_in_the_order_given():
    fig = report_plots.feature_attribution_figure(["bmi", "age", "bp"], np.array([3.0, 0.5, 0.1]), "progression")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    tops = sorted(zip((bar.get_y() for bar in ax.patches), labels, strict=True))
    assert [label for _, label in tops] == ["bmi", "age", "bp"]  # inverted axis: the first on top
    assert [round(bar.get_width(), 3) for bar in ax.patches] == [3.0, 0.5, 0.1]
