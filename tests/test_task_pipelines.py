"""Regression and text classification through the real pipeline: `dvc exp run` of a table that
ships inside scikit-learn (diabetes), the user's own CSV, and the user's own text folder, each
checked, registered and predicted from raw input as its task needs.

One fresh project copy is shared; each test is one experiment, as a user would run them in turn.
"""

from __future__ import annotations

import csv
import json
import re
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from tests.project import ROOT, dvc, project_copy, reprovision

from reprovision.data.shards import load_split
from reprovision.files import read_csv
from reprovision.models.predictor import load_predictor

pytestmark = pytest.mark.slow
QUICK = ("-S", "trainer.progress_bar=false", "-S", "model=mlp", "-S", "optim=rmsprop")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> SimpleNamespace:
    work = project_copy(ROOT, tmp_path_factory.mktemp("project"))
    return SimpleNamespace(work=work, data=tmp_path_factory.mktemp("data"))


def test_diabetes_regression_picks_the_lowest_val_mae_and_cross_validates(project):
    work = project.work
    dvc(work, "exp", "run", *QUICK, "-S", "data=diabetes", "-S", "model.hidden=[32]",
        "-S", "trainer.max_epochs=12", "-S", "split.folds=3")  # fmt: skip
    eval_json = json.loads((work / "metrics" / "eval.json").read_text())
    assert {k for k in eval_json if not k.startswith("baseline/")} == {"test/mae", "test/mse", "test/rmse", "test/r2"}
    assert {"baseline/linear/test/mae", "baseline/mean/test/mae", "baseline/margin/test/mae"} <= set(eval_json)
    # eval.json is what the per-row file says.
    rows = read_csv(work / "metrics" / "evaluation" / "predicted_values.csv")
    errors = np.array([float(r["predicted"]) - float(r["actual"]) for r in rows])
    assert len(rows) == 89 and np.abs(errors).mean() == pytest.approx(eval_json["test/mae"], rel=1e-4)
    # The model kept is the epoch with the lowest val/mae of the curves.
    curves = read_csv(work / "metrics" / "curves.csv")
    maes = [float(r["val/mae"]) for r in curves]
    train_json = json.loads((work / "metrics" / "train.json").read_text())
    assert train_json["best_epoch"] == 1 + int(np.argmin(maes)) and train_json["val/mae"] == min(maes)
    assert torch.load(work / "models" / "model.ckpt", weights_only=True)["epoch"] + 1 == train_json["best_epoch"]
    # Cross-validation: the fold-mean curve and its smoothing per epoch, and the epoch it picks.
    smoothed = [float(r["cv/val/mae_smoothed"]) for r in curves]
    assert train_json["cv/best_epoch"] == 1 + int(np.argmin(smoothed)) and train_json["cv/folds"] == 3
    # The registry's champion rule is the lowest val/mae.
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("diabetes-regression", "champion")
    assert float(champion.tags["val_mae"]) == pytest.approx(train_json["val/mae"])
    # The regression check compares the regression metrics.
    reprovision(work, "check", "--update")
    checked = [line.split()[0] for line in reprovision(work, "check").stdout.splitlines()[2:]]
    assert checked == ["test/mae", "test/rmse", "test/r2", "val/mae"]
    page = (work / "reports" / "index.html").read_text()
    assert "predicted" in page and "test/mae" in page
    # DVC's plots are the regression's: MAE per epoch and predicted vs actual, none missing.
    plots = json.loads(dvc(work, "plots", "show", "--json"))
    assert not plots.get("errors"), plots.get("errors")
    score = json.dumps(plots["data"]["Score per epoch"])
    assert "val/mae" in score and "val/acc" not in score
    assert '"type": "point"' in json.dumps(plots["data"]["Test predictions"][0]["content"])  # DVC's scatter


def test_predict_turns_raw_table_rows_into_the_evaluated_predictions(project):
    """The checkpoint alone normalises raw rows: predicting the raw test rows from a CSV gives the
    evaluate stage's predictions."""
    work = project.work
    test = load_split(work / "data" / "split", "test")
    features = json.loads((work / "data" / "split" / "summary.json").read_text())["features"]
    table = project.data / "rows.csv"
    with table.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", *reversed(features)])  # any column order; other columns ignored
        writer.writerows([i, *reversed(row.tolist())] for i, row in enumerate(test["x"][:10]))
    out = json.loads(reprovision(work, "predict", "--table", str(table), "--json").stdout)
    evaluated = read_csv(work / "metrics" / "evaluation" / "predicted_values.csv")[:10]
    assert [r["predicted"] for r in out] == pytest.approx([float(r["predicted"]) for r in evaluated], rel=1e-4)


def test_own_csv_as_classification(project):
    work = project.work
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 3))
    label = np.where(x[:, 0] + 0.5 * x[:, 2] > 0, "yes", "no")
    table = project.data / "own.csv"
    with table.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["f1", "f2", "f3", "label"])
        writer.writerows([*np.round(r, 4).tolist(), lab] for r, lab in zip(x, label, strict=True))
    dvc(work, "exp", "run", *QUICK, "-S", "data=table", "-S", f"data.path={table}", "-S", "data.target=label",
        "-S", "data.task=classification", "-S", "model.hidden=[16]", "-S", "trainer.max_epochs=20")  # fmt: skip
    eval_json = json.loads((work / "metrics" / "eval.json").read_text())
    assert eval_json["test/acc"] >= 0.85
    confusion = json.loads((work / "metrics" / "evaluation" / "confusion_matrix.json").read_text())
    assert confusion["classes"] == ["no", "yes"]
    # The report ranks the features by what moved the predicted class: f1 and f3 decide, f2 is noise.
    page = (work / "reports" / "index.html").read_text()
    ranking = page.split("<h2>Features that moved the predictions</h2>")[1].split('<table class="ranking">')[1]
    ranked = re.findall(r"<tr><td>\d+</td><td>(\w+)</td>", ranking.split("</table>")[0])
    assert ranked[0] == "f1" and ranked[-1] == "f2", ranked


def write_reviews(root: Path, rng) -> Path:
    """A text folder: positive reviews say great or good, negative ones awful or bad, amid filler."""
    filler = [f"word{i}" for i in range(40)]
    for split, n in (("train", 80), ("test", 20)):
        for label, cues in (("pos", ["great", "good"]), ("neg", ["awful", "bad"])):
            (root / split / label).mkdir(parents=True)
            for i in range(n):
                words = [*rng.choice(filler, 12), cues[i % 2]]
                rng.shuffle(words)
                (root / split / label / f"{i}.txt").write_text(" ".join(words).capitalize() + ".")
    archive = root.parent / "reviews.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="reviews")
    return archive


def test_text_folder_with_the_convolutional_text_model(project):
    work = project.work
    archive = write_reviews(project.data / "reviews", np.random.default_rng(1))
    dvc(work, "exp", "run", *QUICK, "-S", "data=textfolder", "-S", f"data.path={archive}", "-S", "model=text_cnn",
        "-S", "data.max_length=30", "-S", "trainer.max_epochs=15", "-S", "optim=adam", "-S", "optim.lr=0.01")  # fmt: skip
    eval_json = json.loads((work / "metrics" / "eval.json").read_text())
    assert eval_json["test/acc"] >= 0.9
    model = load_predictor(work / "models" / "model.ckpt")
    assert {"great", "awful"} <= set(model.hparams.inputs["vocabulary"])
    out = json.loads(reprovision(work, "predict", "--text", "What a GREAT film.", "--text", "Awful.", "--json").stdout)
    assert [r["top"][0]["class"] for r in out] == ["pos", "neg"]
    # The report's word attributions: in every explained document the word that weighs most, for
    # or against the prediction, is its one cue word.
    page = (work / "reports" / "index.html").read_text()
    explained = re.findall(r'<div class="strongest">(.*?)</div>', page)
    assert explained
    for line in explained:
        weights = {w: abs(float(v)) for w, v in re.findall(r"([\w<>]+) \(([-+][\d.e+-]+)\)", line)}
        assert max(weights, key=weights.get) in {"great", "good", "awful", "bad"}, line
