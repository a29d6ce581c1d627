"""train + evaluate on tiny data: checkpoints load safely and carry their preprocessing."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from reprovision.config import compose, validate
from reprovision.data.normalise import normalise
from reprovision.data.shards import load_split
from reprovision.evaluation import evaluate
from reprovision.files import read_csv, read_json, write_json
from reprovision.models.predictor import load_predictor
from reprovision.tasks import CLASSIFICATION
from reprovision.training.checkpoints import AtomicCheckpointIO
from reprovision.training.fit import train
from reprovision.training.paths import TrainPaths
from reprovision.training.resume import fingerprint


def _plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


def test_train_then_evaluate(tiny_split, tmp_path, root, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = validate(
        compose(
            root / "conf",
            [
                "model=mlp",
                "model.hidden=[16]",
                "trainer.max_epochs=3",
                "trainer.progress_bar=false",
                "data.batch_size=16",
                f"tracking.uri={uri}",
            ],
        )
    )
    normalise(tiny_split, tmp_path / "norm")
    params = tmp_path / "params.yaml"
    params.write_text("seed: 42\n")  # stands in for the resolved config file
    paths = TrainPaths(
        params,
        tmp_path / "norm",
        tiny_split / "summary.json",
        tmp_path / "ckpt",
        tmp_path / "models",
        tmp_path / "train.json",
        tmp_path / "curves.csv",
        tmp_path / "timing.json",
    )
    summary = train(cfg, paths)
    assert summary["epochs"] == 3
    timing = read_json(tmp_path / "timing.json")  # where the time went, apart from the metrics
    assert timing["train_images"] == 3 * 60 and timing["compile_s"] == 0 and 0 < timing["train_s"] < timing["total_s"]
    assert (tmp_path / "curves.csv").read_text().count("\n") == 4  # header + one row per epoch

    # The checkpoint loads with weights_only=True and holds only plain hyperparameters.
    ckpt = torch.load(tmp_path / "models" / "model.ckpt", weights_only=True)
    assert _plain(ckpt["hyper_parameters"])
    # The training split's statistics travel with the model: it turns raw uint8 into its input.
    module = load_predictor(tmp_path / "models" / "model.ckpt")
    assert module.hparams.inputs == read_json(tmp_path / "norm" / "stats.json")["inputs"]

    headline = evaluate(
        tmp_path / "models", tmp_path / "ckpt" / "run.json", tiny_split, tmp_path / "norm", tmp_path / "metrics", "cpu"
    )
    # The headline test/acc is the share of right answers in predictions.csv, in eval.json and MLflow.
    predictions = read_csv(tmp_path / "metrics" / "evaluation" / "predictions.csv")
    assert len(predictions) == 15
    right = sum(p["actual"] == p["predicted"] for p in predictions)
    assert headline["test/acc"] == pytest.approx(right / 15)
    assert read_json(tmp_path / "metrics" / "eval.json")["test/acc"] == headline["test/acc"]
    matrix = np.array(read_json(tmp_path / "metrics" / "evaluation" / "confusion_matrix.json")["matrix"])
    assert matrix.sum() == 15

    run_id = read_json(tmp_path / "ckpt" / "run.json")["run_id"]
    run = MlflowClient(uri).get_run(run_id)
    assert run.data.params["model.name"] == "mlp"
    assert run.info.run_name == "digits-mlp-adam"  # data-model-optimizer, outside `dvc exp run`
    # The splits it saw, as run inputs: the hash of each split's shards is the digest.
    inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
    assert sorted(inputs) == ["test", "training", "validation"]
    for context, split in (("training", "train"), ("validation", "val"), ("test", "test")):
        files = sorted((tiny_split / split).iterdir())
        listing = "\n".join(f"{f.name} {hashlib.md5(f.read_bytes()).hexdigest()}" for f in files)
        assert inputs[context].digest == hashlib.md5(listing.encode()).hexdigest()
        assert inputs[context].name == f"tiny-{split}"
    assert run.data.params["dataset.classes"] == "a,b,c"
    assert run.data.params["dataset.size.train"] == "60"
    assert int(run.data.params["model.parameter_count"]) == sum(p.numel() for p in module.net.parameters())
    assert run.data.tags["recipe"].startswith("mlp adam lr=0.001 constant")
    assert run.data.metrics["test/acc"] == headline["test/acc"]
    assert run.data.metrics["time/train_s"] == timing["train_s"]


def test_the_model_is_the_epoch_with_the_best_val_acc_and_evaluate_scores_its_predictions(
    tiny_split, tmp_path, root, monkeypatch
):
    """models/model.ckpt holds the epoch curves.csv shows ranks best (the highest val/acc, ties to the
    lower val/loss), not the last or the worst; eval.json's test/acc is what predictions.csv shows."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # Plain SGD on the tiny data climbs for an epoch, then its accuracy levels off while the loss
    # still falls: the tie goes to the lower loss.
    overrides = ["model=mlp", "model.hidden=[16]", "optim=sgd", "optim.lr=0.05", "trainer.max_epochs=5"]
    overrides += ["trainer.progress_bar=false", "data.batch_size=16", "tracking.registered_model=null"]
    cfg = validate(compose(root / "conf", [*overrides, f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"]))
    normalise(tiny_split, tmp_path / "norm")
    (tmp_path / "params.yaml").write_text("seed: 42\n")
    train(cfg, TrainPaths.scratch(tmp_path, tmp_path / "params.yaml", tmp_path / "norm", tiny_split / "summary.json"))

    curves = read_csv(tmp_path / "curves.csv")
    val_acc = [float(row["val/acc"]) for row in curves]
    assert min(val_acc) < max(val_acc), f"val/acc never moved ({val_acc}): no epoch to choose"
    rows = [{k: float(v) for k, v in row.items() if v} for row in curves]
    best = curves[rows.index(CLASSIFICATION.best(rows))]
    model = tmp_path / "models" / "model.ckpt"
    assert torch.load(model, weights_only=True)["epoch"] + 1 == int(best["epoch"]), val_acc
    assert read_json(tmp_path / "train.json")["best_epoch"] == int(best["epoch"])
    # The weights themselves score that epoch's val/acc.
    val, net = load_split(tiny_split, "val"), load_predictor(model)
    with torch.no_grad():
        predicted = net(net.preprocess(torch.from_numpy(val["x"]))).argmax(1).numpy()
    assert (predicted == val["y"]).mean() == pytest.approx(float(best["val/acc"]))

    metrics = tmp_path / "metrics"
    evaluate(tmp_path / "models", tmp_path / "checkpoints" / "run.json", tiny_split, tmp_path / "norm", metrics, "cpu")
    predictions = read_csv(metrics / "evaluation" / "predictions.csv")
    right = sum(p["actual"] == p["predicted"] for p in predictions)
    assert read_json(metrics / "eval.json")["test/acc"] == pytest.approx(right / len(predictions))


def test_bf16_with_clipping_trains_and_a_rerun_after_a_kill_past_the_last_epoch_finishes(tiny_split, tmp_path, root):
    """Mixed precision with gradient clipping (fused optimizers cannot be clipped: not used then);
    and a stage killed after its last epoch (while logging the model) finishes on the rerun."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = ["model=mlp", "model.hidden=[16]", "trainer.max_epochs=2", "trainer.progress_bar=false"]
    overrides += ["trainer.precision=bf16-mixed", "trainer.gradient_clip=1.0", "tracking.registered_model=null"]
    cfg = validate(compose(root / "conf", [*overrides, f"tracking.uri={uri}"]))
    normalise(tiny_split, tmp_path / "norm")
    params = tmp_path / "params.yaml"
    params.write_text("seed: 42\n")
    paths = (params, tmp_path / "norm", tiny_split / "summary.json", tmp_path / "ckpt", tmp_path / "models")
    first = train(cfg, TrainPaths(*paths, tmp_path / "train.json", tmp_path / "curves.csv"))
    assert first["epochs"] == 2
    # As a kill during model logging leaves it: the final last.ckpt and resume.json.
    run = read_json(tmp_path / "ckpt" / "run.json")
    key = fingerprint(cfg, tiny_split, tmp_path / "norm")
    write_json(tmp_path / "ckpt" / "resume.json", {"fingerprint": key, "run": run})
    again = train(cfg, TrainPaths(*paths, tmp_path / "again.json", tmp_path / "curves2.csv", tmp_path / "t.json"))
    assert again == first and read_json(tmp_path / "t.json")["train_images"] == 0  # nothing trained twice
    assert not (tmp_path / "ckpt" / "resume.json").exists()
    assert MlflowClient(uri).get_run(run["run_id"]).info.status == "FINISHED"


@pytest.mark.parametrize("every_s", [0, 3600])
def test_last_checkpoint_and_mlflow_rows_are_written_at_the_interval_and_at_the_end(
    tiny_split, tmp_path, root, monkeypatch, every_s
):
    writes, write = [], AtomicCheckpointIO._write

    def recorded(checkpoint, path):
        writes.append(Path(path).name)
        write(checkpoint, path)

    monkeypatch.setattr(AtomicCheckpointIO, "_write", staticmethod(recorded))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = ["model=mlp", "model.hidden=[16]", "trainer.max_epochs=4", "trainer.progress_bar=false"]
    overrides += [f"trainer.checkpoint_every_s={every_s}", "tracking.registered_model=null", f"tracking.uri={uri}"]
    cfg = validate(compose(root / "conf", overrides))
    normalise(tiny_split, tmp_path / "norm")
    (tmp_path / "params.yaml").write_text("seed: 42\n")
    train(cfg, TrainPaths.scratch(tmp_path, tmp_path / "params.yaml", tmp_path / "norm", tiny_split / "summary.json"))
    # The best checkpoint reaches disk just before last.ckpt, never after an epoch it holds.
    assert writes.count("last.ckpt") == (4 if every_s == 0 else 1) and writes[-1] == "last.ckpt"
    assert writes.count("best.ckpt") >= 1 and writes.index("best.ckpt") < writes.index("last.ckpt")
    run_id = read_json(tmp_path / "checkpoints" / "run.json")["run_id"]
    assert [m.step for m in MlflowClient(uri).get_metric_history(run_id, "val/acc")] == [1, 2, 3, 4]


def test_a_held_best_checkpoint_keeps_the_weights_it_was_saved_with(tmp_path):
    io = AtomicCheckpointIO(held=("best.ckpt",))
    weight = torch.zeros(3)
    io.save_checkpoint({"state_dict": {"w": weight}}, tmp_path / "best.ckpt")
    assert not (tmp_path / "best.ckpt").exists()  # held until last.ckpt is written
    weight += 1  # training goes on in place
    io.save_checkpoint({"state_dict": {"w": weight}}, tmp_path / "last.ckpt")
    best, last = (torch.load(tmp_path / f, weights_only=True)["state_dict"]["w"] for f in ("best.ckpt", "last.ckpt"))
    assert best.tolist() == [0, 0, 0] and last.tolist() == [1, 1, 1]


@pytest.mark.slow
def test_a_compiled_run_reports_its_compile_time_and_a_second_run_reads_the_cache(tiny_split, tmp_path, root):
    """Two train processes of the same compiled config: the first compiles, the second takes
    Inductor's cache and spends a fraction of the time; both train the same model."""
    normalise(tiny_split, tmp_path / "norm")
    overrides = ["model=mlp", "model.hidden=[8]", "trainer.max_epochs=2"]  # the cheapest net to compile
    overrides += ["trainer.compile=true", "trainer.progress_bar=false"]
    overrides += ["tracking.registered_model=null", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"]
    (tmp_path / "params.yaml").write_text(OmegaConf.to_yaml(compose(root / "conf", overrides)))
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "compile-cache")}
    timings = []
    for run in ("cold", "warm"):
        cmd = [sys.executable, "-m", "reprovision", "train", "--params", str(tmp_path / "params.yaml")]
        cmd += ["--data", str(tmp_path / "norm"), "--summary", str(tiny_split / "summary.json")]
        cmd += ["--checkpoints", str(tmp_path / run / "ckpt"), "--out", str(tmp_path / run / "models")]
        cmd += ["--metrics", str(tmp_path / run / "train.json"), "--curves", str(tmp_path / run / "curves.csv")]
        proc = subprocess.run([*cmd, "--timing", str(tmp_path / run / "timing.json")], env=env, capture_output=True)
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
        timings.append(read_json(tmp_path / run / "timing.json"))
    cold, warm = timings
    assert cold["compile_s"] > 0 and warm["compile_s"] < cold["compile_s"] / 2, timings
    assert cold["train_images"] == warm["train_images"] == 2 * 60 and cold["train_s"] > 0 and cold["startup_s"] > 0
    assert (tmp_path / "cold" / "train.json").read_text() == (tmp_path / "warm" / "train.json").read_text()
    # The compiled net's checkpoint is a plain one: same keys as an uncompiled net, loads and predicts.
    module = load_predictor(tmp_path / "warm" / "models" / "model.ckpt")
    assert not any("_orig_mod" in k for k in torch.load(tmp_path / "warm" / "models" / "model.ckpt")["state_dict"])
    assert module(torch.zeros(2, 1, 4, 4)).shape == (2, 3)


def test_a_log_gets_one_line_per_epoch_not_a_redrawn_bar(tiny_split, tmp_path, root, capsys):
    # Under pytest neither stream is a terminal, as in `dvc repro > log` or CI.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = ["model=mlp", "model.hidden=[16]", "trainer.max_epochs=3", "trainer.progress_bar=true"]
    cfg = validate(compose(root / "conf", [*overrides, "tracking.registered_model=null", f"tracking.uri={uri}"]))
    normalise(tiny_split, tmp_path / "norm")
    (tmp_path / "params.yaml").write_text("seed: 42\n")
    capsys.readouterr()
    train(cfg, TrainPaths.scratch(tmp_path, tmp_path / "params.yaml", tmp_path / "norm", tiny_split / "summary.json"))
    out, err = capsys.readouterr()
    epochs = [line for line in out.splitlines() if line.startswith("train: epoch ")]
    assert [line.split()[2] for line in epochs] == ["1/3", "2/3", "3/3"]
    assert all("val/acc" in line and "train/loss" in line for line in epochs)
    assert "\r" not in out + err


@pytest.mark.parametrize("on", [True, False])
def test_system_metrics_reach_the_runs_system_metrics_tab_while_training(tiny_split, tmp_path, root, on):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = ["model=mlp", "model.hidden=[16]", "trainer.max_epochs=8", "trainer.progress_bar=false"]
    overrides += [f"tracking.system_metrics={str(on).lower()}", "tracking.system_metrics_every_s=0.1"]
    cfg = validate(compose(root / "conf", [*overrides, "tracking.registered_model=null", f"tracking.uri={uri}"]))
    normalise(tiny_split, tmp_path / "norm")
    (tmp_path / "params.yaml").write_text("seed: 42\n")
    train(cfg, TrainPaths.scratch(tmp_path, tmp_path / "params.yaml", tmp_path / "norm", tiny_split / "summary.json"))
    run_id = read_json(tmp_path / "checkpoints" / "run.json")["run_id"]
    logged = MlflowClient(uri).get_run(run_id).data.metrics
    expected = {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"}
    assert expected <= set(logged) if on else not any(k.startswith("system/") for k in logged)


def test_a_smoke_run_takes_a_few_batches_of_each_split_and_is_never_registered(tiny_split, tmp_path, root):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = ["trainer=smoke", "model=mlp", "model.hidden=[16]", "data.batch_size=8", "data.eval_batch_size=4"]
    overrides += ["trainer.progress_bar=false", "tracking.registered_model=smoked", f"tracking.uri={uri}"]
    cfg = validate(compose(root / "conf", overrides))
    assert (cfg.trainer.max_epochs, cfg.trainer.limit_batches) == (2, 2)
    normalise(tiny_split, tmp_path / "norm")
    (tmp_path / "params.yaml").write_text("seed: 42\n")
    paths = TrainPaths.scratch(tmp_path, tmp_path / "params.yaml", tmp_path / "norm", tiny_split / "summary.json")
    timing = tmp_path / "timing.json"
    train(cfg, dataclasses.replace(paths, timing=timing))
    assert read_json(timing)["train_images"] == 2 * 2 * 8  # two epochs of two batches, not the 60 images
    rows = (tmp_path / "curves.csv").read_text().splitlines()
    assert len(rows) == 3 and all(field for row in rows[1:] for field in row.split(","))  # every metric, each epoch
    run_file = tmp_path / "checkpoints" / "run.json"
    headline = evaluate(
        *(tmp_path / "models", run_file, tiny_split, tmp_path / "norm", tmp_path / "metrics", "cpu"),
        batch_size=4,
        limit_batches=2,
    )
    predictions = (tmp_path / "metrics" / "evaluation" / "predictions.csv").read_text().splitlines()
    assert len(predictions) == 1 + 2 * 4  # two test batches of four
    client = MlflowClient(uri)
    run = client.get_run(read_json(run_file)["run_id"])
    assert run.data.tags["smoke"] == "true" and run.data.metrics["test/acc"] == headline["test/acc"]
    assert client.search_registered_models() == []  # never a version, never the champion
