"""The served MLflow model (serving.ServedModel) on each kind of input, called as `mlflow models
serve` calls it: load_context with the logged checkpoint, then predict on a frame of raw inputs."""

from __future__ import annotations

import base64
import io
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from tests.commands.test_predict_inputs import ROWS, TABLE, TEXT, ids, normalised, save_model

from reprovision.errors import BadInput
from reprovision.serving import ServedModel


def served(path) -> ServedModel:
    model = ServedModel()
    model.load_context(SimpleNamespace(artifacts={"checkpoint": str(path)}))
    return model


def test_a_table_regression_model_answers_the_predicted_value_of_each_row(tmp_path):
    module = save_model(tmp_path / "model.ckpt", "regression", [], TABLE)
    # Columns by name in another order, as strings or numbers, with one the model does not read.
    frame = pd.DataFrame({"bp": ROWS[:, 2], "id": ["x", "y", "z"], "bmi": ROWS[:, 1].astype(str), "age": ROWS[:, 0]})
    answer = served(tmp_path / "model.ckpt").predict(None, frame)
    with torch.no_grad():
        expected = module(normalised(ROWS)).numpy()
    assert list(answer.columns) == ["predicted"]
    assert answer["predicted"].to_numpy() == pytest.approx(expected, abs=1e-5)

    with pytest.raises(BadInput, match=r"^input: column 'age', row 1: has no value; give every feature a number$"):
        served(tmp_path / "model.ckpt").predict(None, frame.assign(age=[1.0, None, 2.0]))
    with pytest.raises(BadInput, match=r"^input: no column 'bmi'; the model takes the feature columns age, bmi, bp"):
        served(tmp_path / "model.ckpt").predict(None, frame.drop(columns="bmi"))


def test_a_text_classifier_answers_class_probabilities_of_each_document(tmp_path):
    module = save_model(tmp_path / "model.ckpt", "classification", ["neg", "pos"], TEXT)
    frame = pd.DataFrame({"text": ["Good movie!", "bad plot", "zyzzyva", "good MOVIE"]})
    answer = served(tmp_path / "model.ckpt").predict(None, frame)
    with torch.no_grad():
        rows = [ids("good", "movie"), ids("bad", "plot"), ids("zyzzyva"), ids("good", "movie")]
        expected = np.stack([torch.softmax(module(torch.tensor([r])), dim=1)[0].numpy() for r in rows])
    assert list(answer.columns) == ["predicted", "confidence", "p_neg", "p_pos"]
    assert answer[["p_neg", "p_pos"]].to_numpy() == pytest.approx(expected, abs=1e-6)
    assert list(answer["predicted"]) == [["neg", "pos"][i] for i in expected.argmax(1)]
    assert answer["confidence"].to_numpy() == pytest.approx(expected.max(1), abs=1e-6)

    with pytest.raises(BadInput, match=r"^input has no `text` column \(it has review\); the model takes a `text`"):
        served(tmp_path / "model.ckpt").predict(None, frame.rename(columns={"text": "review"}))


def test_an_image_classifier_answers_for_base64_image_files(tmp_path):
    inputs = {"kind": "image", "shape": [1, 4, 4], "mean": [0.5], "std": [0.25]}
    module = save_model(tmp_path / "model.ckpt", "classification", ["a", "b", "c"], inputs)
    pixels = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    frame = pd.DataFrame({"image": [base64.b64encode(buf.getvalue()).decode()]})
    answer = served(tmp_path / "model.ckpt").predict(None, frame)
    with torch.no_grad():
        x = (torch.from_numpy(pixels).float()[None, None] / 255 - 0.5) / 0.25
        expected = torch.softmax(module(x), dim=1)[0].numpy()
    assert answer[["p_a", "p_b", "p_c"]].to_numpy()[0] == pytest.approx(expected, abs=1e-6)

    with pytest.raises(BadInput, match=r"^row 0: `image` is not base64"):
        served(tmp_path / "model.ckpt").predict(None, pd.DataFrame({"image": ["not base64!"]}))
