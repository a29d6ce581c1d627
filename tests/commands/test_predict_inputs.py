"""`reprovision predict` on each kind of input a model is trained on: table rows (regression and
classification), documents, and the one-line refusals of inputs the model cannot take."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from reprovision.cli import main
from reprovision.data.raw import RESERVED_WORDS, START, UNKNOWN
from reprovision.models.module import Model

ADAM = {
    "name": "adam",
    "lr": 0.001,
    "betas": [0.9, 0.999],
    "weight_decay": 0.0,
    "schedule": "constant",
    "warmup_epochs": 0,
    "step_epochs": 10,
    "gamma": 0.1,
}
MLP = {"name": "mlp", "init": "default", "hidden": [8], "dropout": 0.0}
TEXT_CNN = {"name": "text_cnn", "init": "default", "embedding": 4, "channels": 6, "kernel": 3, "dropout": 0.0}
# Means and spreads far from 0 and 1, so a row that skipped normalisation gets another answer.
TABLE = {"kind": "table", "features": ["age", "bmi", "bp"], "mean": [50.0, 25.0, 90.0], "std": [10.0, 5.0, 12.0]}
WORDS = ["good", "bad", "movie", "plot", "acting"]  # ids 4.. after the reserved ones
TEXT = {"kind": "text", "vocabulary": [*RESERVED_WORDS, *WORDS], "max_length": 4}
ROWS = np.array([[63.0, 31.5, 101.0], [41.0, 19.0, 77.0], [55.0, 27.0, 95.0]])  # age, bmi, bp


def save_model(path: Path, task: str, classes: list[str], inputs: dict, net: dict = MLP) -> Model:
    """An untrained model saved as the train stage writes models/model.ckpt (publish.write_model);
    seeded, so its answers differ from input to input but not from run to run."""
    torch.manual_seed(0)
    module = Model(net=net, optim=ADAM, task=task, classes=classes, inputs=inputs).eval()
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    torch.save({**checkpoint, "epoch": 0, "global_step": 0, "pytorch-lightning_version": "2"}, path)
    return module


def normalised(rows: np.ndarray) -> torch.Tensor:
    """Rows in the model's feature order, normalised as the normalise stage does it."""
    return torch.tensor((rows - np.array(TABLE["mean"])) / np.array(TABLE["std"]), dtype=torch.float32)


def write_rows(path: Path, rows: np.ndarray, order=("bp", "target", "age", "bmi")) -> Path:
    """A CSV with its columns in another order than the model's, and a target column it ignores."""
    values = {"age": rows[:, 0], "bmi": rows[:, 1], "bp": rows[:, 2], "target": np.full(len(rows), 1e6)}
    lines = [",".join(order)] + [",".join(repr(float(values[c.strip()][i])) for c in order) for i in range(len(rows))]
    path.write_text("\n".join(lines) + "\n")
    return path


def predict(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["predict", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err.strip()


@pytest.fixture
def regression(tmp_path) -> tuple[Path, Model]:
    path = tmp_path / "regression.ckpt"
    return path, save_model(path, "regression", [], TABLE)


@pytest.fixture
def text_model(tmp_path) -> tuple[Path, Model]:
    path = tmp_path / "text.ckpt"
    return path, save_model(path, "classification", ["neg", "pos"], TEXT)


def test_a_table_regression_predicts_the_value_of_each_row_as_the_model_computes_it(regression, tmp_path, capsys):
    path, module = regression
    rows = write_rows(tmp_path / "rows.csv", ROWS)
    with torch.no_grad():
        expected = module(normalised(ROWS)).numpy()
    assert np.ptp(expected) > 1e-3  # rows the model tells apart: a test of which row is which
    code, out, err = predict(capsys, "--table", str(rows), "--model", str(path), "--json")
    assert code == 0, err
    answers = json.loads(out)
    assert [a["row"] for a in answers] == [1, 2, 3]
    assert [a["predicted"] for a in answers] == pytest.approx(expected.tolist(), abs=1e-5)

    code, out, err = predict(capsys, "--table", str(rows), "--model", str(path))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["row", "predicted"] and len(lines) == 1 + len(ROWS)  # one line per row
    assert [float(line.split()[1]) for line in lines[1:]] == pytest.approx(expected.tolist(), rel=1e-5, abs=1e-5)


def test_a_table_classifier_gives_the_top_classes_of_each_row(tmp_path, capsys):
    path = tmp_path / "model.ckpt"
    module = save_model(path, "classification", ["low", "mid", "high"], TABLE)
    with torch.no_grad():
        expected = torch.softmax(module(normalised(ROWS)), dim=1).numpy()
    code, out, err = predict(
        capsys, "--table", str(write_rows(tmp_path / "rows.csv", ROWS)), "--model", str(path), "--json"
    )
    assert code == 0, err
    for answer, probs in zip(json.loads(out), expected, strict=True):
        top = answer["top"]
        assert [t["class"] for t in top] == [["low", "mid", "high"][j] for j in np.argsort(-probs, kind="stable")]
        assert [t["probability"] for t in top] == pytest.approx(sorted(probs, reverse=True), abs=1e-6)


def ids(*words: str) -> list[int]:
    return [START, *(TEXT["vocabulary"].index(w) if w in WORDS else UNKNOWN for w in words)]


@pytest.mark.parametrize("net", [MLP, TEXT_CNN], ids=["mlp", "text_cnn"])
def test_documents_are_encoded_into_the_models_vocabulary(net, tmp_path, capsys):
    path = tmp_path / "model.ckpt"
    module = save_model(path, "classification", ["neg", "pos"], TEXT, net)
    documents = {
        "A good movie, good acting!": ids("a", "good", "movie", "good", "acting"),
        "Bad plot.": ids("bad", "plot"),
        "zyzzyva quux": ids("zyzzyva", "quux"),  # no word the model knows
    }
    args = [a for doc in [*documents, "Bad plot."] for a in ("--text", doc)]
    code, out, err = predict(capsys, *args, "--model", str(path), "--json", "--top-k", "2")
    assert code == 0, err
    got = [{t["class"]: t["probability"] for t in answer["top"]} for answer in json.loads(out)]
    assert [answer["text"] for answer in json.loads(out)] == [*documents, "Bad plot."]
    for probs, encoded in zip(got, documents.values(), strict=False):
        with torch.no_grad():  # each alone, cut to max_length words after START, as in training
            expected = torch.softmax(module(torch.tensor([encoded[: TEXT["max_length"] + 1]])), dim=1)[0]
        assert [probs["neg"], probs["pos"]] == pytest.approx(expected.tolist(), abs=1e-6)
    assert got[3] == got[1]  # the same document, beside others of another length, the same answer


def test_a_text_file_is_one_document(text_model, tmp_path, capsys):
    path, _ = text_model
    (tmp_path / "review.txt").write_text("Bad plot.\nGood acting though.\n", encoding="utf-8")
    code, out, err = predict(capsys, "--text-file", str(tmp_path / "review.txt"), "--model", str(path), "--json")
    assert code == 0, err
    from_file = json.loads(out)[0]
    code, out, err = predict(capsys, "--text", "Bad plot.\nGood acting though.\n", "--model", str(path), "--json")
    assert from_file["file"] == str(tmp_path / "review.txt") and from_file["top"] == json.loads(out)[0]["top"]


def test_a_text_file_that_is_not_utf8_is_named(text_model, tmp_path, capsys):
    path, _ = text_model
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9 good".encode("latin-1"))
    code, _, err = predict(capsys, "--text-file", str(tmp_path / "latin1.txt"), "--model", str(path))
    assert code == 2 and "\n" not in err
    assert err == f"reprovision predict: error: {tmp_path / 'latin1.txt'}: not UTF-8 text (byte 3 is b'\\xe9'); save it as UTF-8"  # fmt: skip


def test_inputs_of_another_kind_than_the_model_takes_are_refused_in_one_line(text_model, regression, tmp_path, capsys):
    text_path, _ = text_model
    rows = write_rows(tmp_path / "rows.csv", ROWS)
    code, _, err = predict(capsys, "--table", str(rows), "--model", str(text_path))
    assert code == 2
    assert err == (
        f"reprovision predict: error: {text_path} takes text, not table rows: "
        'pass --text "a document" or --text-file PATH'
    )
    code, _, err = predict(capsys, "--text", "good", "--model", str(regression[0]))
    assert code == 2
    assert err.startswith(f"reprovision predict: error: {regression[0]} takes table rows, not text: pass --table")
    code, _, err = predict(capsys, "--text", "good", "--table", str(rows), "--model", str(text_path))
    assert code == 2 and err.startswith("reprovision predict: error: got text and table rows: pass inputs of exactly one kind")  # fmt: skip


def test_a_csv_without_a_feature_column_is_refused_naming_it(regression, tmp_path, capsys):
    rows = write_rows(tmp_path / "rows.csv", ROWS, order=("bp", "age", "target"))
    code, _, err = predict(capsys, "--table", str(rows), "--model", str(regression[0]))
    assert code == 2
    assert err == (
        f"reprovision predict: error: {rows}: no column 'bmi'; the model takes the feature columns age, bmi, bp "
        "(by name, in any order)"
    )


@pytest.mark.parametrize("cell", ["abc", "", "inf", "nan", "1e400"])
def test_a_cell_that_is_not_a_finite_number_is_refused_naming_column_and_row(cell, regression, tmp_path, capsys):
    rows = write_rows(tmp_path / "rows.csv", ROWS)
    lines = rows.read_text().splitlines()
    bp, target, age, _ = lines[2].split(",")
    lines[2] = ",".join([bp, target, age, cell])  # row 2's bmi
    rows.write_text("\n".join(lines) + "\n")
    code, _, err = predict(capsys, "--table", str(rows), "--model", str(regression[0]))
    assert code == 2
    assert err == (
        f"reprovision predict: error: {rows}: column 'bmi', row 2: {cell!r} is not a finite number; "
        "give every feature a number"
    )


def test_a_header_with_spaces_reads_as_training_read_it(regression, tmp_path, capsys):
    """Training strips the header's names (" bmi" is bmi); predict reads the same file the same way."""
    path, module = regression
    rows = write_rows(tmp_path / "rows.csv", ROWS, order=(" bp", "target", "age ", " bmi "))
    with torch.no_grad():
        expected = module(normalised(ROWS)).numpy()
    code, out, err = predict(capsys, "--table", str(rows), "--model", str(path), "--json")
    assert code == 0, err
    assert [a["predicted"] for a in json.loads(out)] == pytest.approx(expected.tolist(), abs=1e-5)


def test_a_document_longer_than_any_the_model_read_is_cut_there(tmp_path, capsys):
    """With no max_length, the longest training document bounds what predict and serve encode."""
    path = tmp_path / "model.ckpt"
    module = save_model(path, "classification", ["neg", "pos"], {**TEXT, "max_length": None, "longest": 3}, TEXT_CNN)
    code, out, err = predict(capsys, "--text", "bad plot good " + "acting " * 100_000, "--model", str(path), "--json")
    assert code == 0, err
    probs = {t["class"]: t["probability"] for t in json.loads(out)[0]["top"]}
    with torch.no_grad():
        expected = torch.softmax(module(torch.tensor([ids("bad", "plot", "good")])), dim=1)[0]
    assert [probs["neg"], probs["pos"]] == pytest.approx(expected.tolist(), abs=1e-6)


def test_the_printed_table_names_a_file_by_its_whole_path_and_a_long_document_by_its_start(
    text_model, tmp_path, capsys
):
    path, _ = text_model
    deep = tmp_path / ("a-directory-with-a-long-name-" * 3) / "review.txt"
    deep.parent.mkdir()
    deep.write_text("good acting")
    long_text = "bad plot " * 30
    code, out, err = predict(capsys, "--text-file", str(deep), "--text", long_text, "--model", str(path))
    assert code == 0, err
    assert str(deep) in out
    assert "bad plot bad plot" in out and long_text.strip() not in out and "..." in out
