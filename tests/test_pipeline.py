"""The real pipeline: `dvc repro`, `dvc exp run`, the check and reproduce, in a fresh copy.

One full `dvc repro` (the module fixture) is shared; the tests after it build on each other in
file order (a worse experiment and the pages a reviewer opens for it, a teammate reproducing the first
run, a killed run), as a user would.
"""

from __future__ import annotations

import contextlib
import json
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from mlflow.tracking import MlflowClient
from tests.browser import assert_rendered, chromium, render, vega_charts
from tests.project import BIN, ROOT, dvc, pipeline_env, project_copy, reprovision, require_plots_page, run

from reprovision.data.shards import load_split

pytestmark = pytest.mark.slow
STAGES = ("download", "split", "normalise", "train", "evaluate", "report")


def has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def ran(output: str) -> list[str]:
    return [s for s in STAGES if f"Running stage '{s}'" in output]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> SimpleNamespace:
    """One full `dvc repro` from clean (`make clean`: no metrics either), shared by the tests below.

    With the committed metrics in place DVC may skip evaluate: the model is a function of config,
    data and code, so on the machine that committed them evaluate's inputs and outputs are already
    up to date."""
    work = project_copy(ROOT, tmp_path_factory.mktemp("project"))
    for path in (work / "metrics").iterdir():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    output = dvc(work, "repro")
    run_id = json.loads((work / "checkpoints" / "run.json").read_text())["run_id"]
    eval_json = (work / "metrics" / "eval.json").read_bytes()
    return SimpleNamespace(work=work, output=output, run_id=run_id, eval_json=eval_json, tracked=tracked_files(work))


def tracked_files(work: Path) -> dict[str, bytes]:
    """What a run changed that git tracks, or would (not ignored), as a user would commit it."""
    status = subprocess.run(["git", "status", "--porcelain", "-uall"], cwd=work, capture_output=True, text=True)
    names = [line[3:] for line in status.stdout.splitlines()]
    return {name: (work / name).read_bytes() if (work / name).is_file() else b"" for name in names}


def test_repro_runs_all_six_stages_and_meets_the_accuracy_bar(pipeline):
    work, output = pipeline.work, pipeline.output
    assert ran(output) == list(STAGES)
    metrics = json.loads((work / "metrics" / "eval.json").read_text())
    assert metrics["test/acc"] >= 0.97
    assert (work / "reports" / "index.html").is_file()
    assert (work / "models" / "model.ckpt").is_file()


@pytest.mark.skipif(
    platform.machine() != "x86_64" or "avx2" not in Path("/proc/cpuinfo").read_text().split() or has_gpu(),
    reason="portable numerics promise the committed bytes on x86-64 CPUs with AVX2 (no GPU) only",
)
def test_a_run_from_clean_rewrites_the_committed_results_byte_for_byte(pipeline):
    """Another x86-64 machine than the one that committed them: the same dvc.lock and metrics/."""
    changed = [name for name in pipeline.tracked if name == "dvc.lock" or name.startswith("metrics/")]
    assert changed == [], {name: pipeline.tracked[name][:300] for name in changed}


def test_second_repro_is_up_to_date(pipeline):
    work = pipeline.work
    start = time.monotonic()
    output = dvc(work, "repro")
    assert time.monotonic() - start < 15
    assert ran(output) == []
    assert "up to date" in output


def test_mlflow_run_has_params_histories_confusion_matrix_and_checkpoint(pipeline):
    work = pipeline.work
    run_info = json.loads((work / "checkpoints" / "run.json").read_text())
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    run = client.get_run(run_info["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["optim.lr"] == "0.001"
    assert run.data.params["model.name"] == "cnn"
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, capture_output=True, text=True).stdout
    assert run.data.tags["git_commit"] == commit.strip()
    epochs = json.loads((work / "metrics" / "train.json").read_text())["epochs"]
    for key in ("train/loss", "train/acc", "val/loss", "val/acc", "train/lr"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == list(range(1, epochs + 1)), key
    eval_metrics = json.loads((work / "metrics" / "eval.json").read_text())
    assert run.data.metrics["test/acc"] == eval_metrics["test/acc"]

    def artifacts(path=None):
        for a in client.list_artifacts(run.info.run_id, path):
            yield from artifacts(a.path) if a.is_dir else [a.path]

    names = set(artifacts())
    assert "config/params.yaml" in names and "data/summary.json" in names
    # Enough to reproduce: the code, whether it was changed, the data, the versions.
    assert run.data.tags["git_dirty"] == "False"
    lock = yaml.safe_load((work / "dvc.lock").read_text())
    assert run.data.tags["data_md5"] == lock["stages"]["split"]["outs"][0]["md5"]
    for pkg in ("python", "torch", "pytorch-lightning", "mlflow", "dvc"):
        assert run.data.tags[f"{pkg}_version"]
    assert run.data.params["dataset.size.test"] == "360"
    assert {
        "evaluation/confusion_matrix.png",
        "evaluation/confusion_matrix.json",
        "checkpoints/best.ckpt",
        "report/index.html",
    } <= names


def test_dvc_metrics_plots_and_dag_work(pipeline):
    work = pipeline.work
    metrics = json.loads(dvc(work, "metrics", "show", "--json"))
    assert json.dumps(metrics).count("test/acc") >= 1
    dag = dvc(work, "dag")
    assert all(s in dag for s in STAGES)
    require_plots_page()
    dvc(work, "plots", "show", "-o", "dvc_plots")
    assert (work / "dvc_plots" / "index.html").is_file()


def test_check_passes_on_the_unchanged_run(pipeline):
    work = pipeline.work
    summary = work / "summary.md"
    proc = reprovision(work, "check", "--markdown", str(summary))
    assert "test/acc" in proc.stdout
    assert "### reprovision check passed" in summary.read_text()


def test_a_worse_experiment_reruns_only_downstream_stages_and_fails_the_check(pipeline):
    work = pipeline.work
    subprocess.run(["git", "add", "-A"], cwd=work, check=True)  # commit the first run, as a user would
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "run"],
        cwd=work,
        check=True,
    )
    output = dvc(work, "exp", "run", "-S", "trainer.max_epochs=1")
    assert ran(output) == ["train", "evaluate", "report"]
    assert "max_epochs: 1\n" in (work / "params.yaml").read_text()
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("reprovision").experiment_id])
    assert len(runs) == 2
    # Both ways between the experiment `dvc exp show` lists and its MLflow run.
    (name,) = dvc(work, "exp", "list", "--name-only").split()
    newest = max(runs, key=lambda r: r.info.start_time)
    assert newest.data.tags["dvc_exp_name"] == name
    assert reprovision(work, "mlflow-run", name).stdout.strip().endswith(f"/runs/{newest.info.run_id}")
    proc = reprovision(work, "check", ok=False)
    assert proc.returncode == 1
    assert "REGRESSED" in proc.stdout
    # What a reviewer gets on a pull request (make review): DVC's metrics table and plots page of
    # the workspace against the committed run, from git alone (the plotted files are git-tracked).
    committed = json.loads(
        subprocess.run(["git", "show", "HEAD:metrics/eval.json"], cwd=work, capture_output=True).stdout
    )
    now = json.loads((work / "metrics" / "eval.json").read_text())
    diff = dvc(work, "metrics", "diff", "--md", "HEAD").splitlines()
    row = next(line for line in diff if [c.strip() for c in line.split("|")][2:3] == ["test/acc"])
    assert now["test/acc"] != committed["test/acc"]
    assert str(round(committed["test/acc"], 5)) in row and str(round(now["test/acc"], 5)) in row
    assert "test/acc" in proc.stderr.splitlines()[-1]  # the one-line verdict names the metric
    require_plots_page()
    dvc(work, "plots", "diff", "HEAD", "--out", "review")
    page = (work / "review" / "index.html").read_text()
    assert "HEAD" in page and "workspace" in page and "confusion_matrix.png" in page


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


# The pages a user opens after that experiment, in a real browser with the network off (tests/browser.py).
def test_the_report_renders_every_image_offline(pipeline, browser):
    result = render(browser, pipeline.work / "reports" / "index.html", "report.png")
    assert_rendered(result)


def test_dvc_plots_show_draws_every_chart_offline(pipeline, browser):
    require_plots_page()
    work = pipeline.work
    dvc(work, "plots", "show")  # no --html-template: .dvc/config must point DVC at the offline template
    charts = vega_charts(work, "show")
    assert charts >= 3  # loss, accuracy, confusion matrix at least
    assert_rendered(render(browser, work / "dvc_plots" / "index.html", "dvc-plots-show.png", charts), charts)


def test_dvc_plots_diff_draws_every_chart_offline(pipeline, browser):
    """The review page of the worse experiment against the committed run (test above): two revisions
    that differ, in each chart."""
    require_plots_page()
    work = pipeline.work
    assert (work / "review" / "index.html").is_file(), "written by test_a_worse_experiment_reruns_only_..."
    charts = vega_charts(work, "diff", "HEAD")
    assert_rendered(render(browser, work / "review" / "index.html", "dvc-plots-diff.png", charts), charts)


def test_dvc_default_cdn_page_is_caught(pipeline, browser, tmp_path):
    """What the offline template fixes: DVC's own page ({scripts}: Vega from a CDN) draws nothing here."""
    cdn_template = tmp_path / "cdn.html"
    cdn_template.write_text("<html><head>{scripts}</head><body>{plot_divs}</body></html>")
    out = tmp_path / "cdn_plots"
    dvc(pipeline.work, "plots", "show", "--html-template", str(cdn_template), "-o", str(out))
    result = render(browser, out / "index.html", screenshot=None, charts=0)  # nothing to wait for
    assert any("cdn.jsdelivr.net" in url for url in result.offsite)
    assert result.drawn == 0 and any("vegaEmbed is not defined" in e for e in result.errors)


def test_a_bad_value_or_an_uncomposed_edit_of_conf_stops_before_any_output_is_touched(pipeline):
    work = pipeline.work

    def outputs() -> dict[str, bytes]:
        return {
            str(p): p.read_bytes()
            for d in ("metrics", "models", "reports")
            for p in (work / d).rglob("*")
            if p.is_file()
        }

    before, params = outputs(), (work / "params.yaml").read_text()
    proc = run(work, str(BIN / "dvc"), "exp", "run", "-S", "trainer.max_epochs=-1", ok=False)
    assert proc.returncode != 0
    assert "trainer.max_epochs=-1 is out of range" in proc.stdout + proc.stderr
    assert outputs() == before  # DVC never reached train, so never deleted its outputs
    (work / "params.yaml").write_text(params)
    # What only train could find out before: refused by the config stage, the outputs in place.
    import torch

    refused = {
        "model.hidden=1000000000": "the model has 139,000,004,858 parameters",
        "tracking.uri=http://127.0.0.1:9": "MLflow tracking server http://127.0.0.1:9 unreachable",
        "trainer.devices=2": "processes need trainer.strategy=ddp",
        "seed=-1": "seed=-1 is out of range",
        **({} if torch.cuda.is_available() else {"trainer.accelerator=gpu": "trainer.accelerator=gpu but no GPU"}),
    }
    for override, message in refused.items():
        proc = run(work, str(BIN / "dvc"), "exp", "run", "-S", override, ok=False)
        assert proc.returncode != 0 and message in proc.stdout + proc.stderr, override
        assert outputs() == before, override
        (work / "params.yaml").write_text(params)

    cnn = work / "conf" / "model" / "cnn.yaml"
    original = cnn.read_text()
    cnn.write_text(original.replace("hidden: 64", "hidden: 128"))
    try:
        proc = run(work, str(BIN / "dvc"), "repro", ok=False)
    finally:
        cnn.write_text(original)
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "model.hidden: 128 in conf/" in said and "make params" in said
    assert outputs() == before
    dvc(work, "checkout", "data/config.checked")  # the refused check's output, back from DVC's cache
    assert ran(dvc(work, "repro")) == []  # everything as it was: up to date


def test_a_fresh_clone_reproduces_a_recorded_run_from_clean_with_byte_identical_metrics(pipeline, tmp_path):
    """A teammate's clone, with no data yet and an experiment of their own in params.yaml, reproduces
    the first run from the shared store: every stage reruns from clean, the metrics match exactly."""
    work, first_id = pipeline.work, pipeline.run_id
    other = project_copy(ROOT, tmp_path)
    params = other / "params.yaml"
    params.write_text(params.read_text().replace("lr: 0.001", "lr: 0.05"))
    store = f"sqlite:///{work / 'mlflow.db'}"
    proc = run(other, sys.executable, "-m", "reprovision", "reproduce", first_id, MLFLOW_TRACKING_URI=store)
    assert ran(proc.stdout + proc.stderr) == list(STAGES)
    assert "identical metrics" in proc.stdout
    assert "lr: 0.001" in params.read_text()  # the first run's config is back
    assert (other / "metrics" / "eval.json").read_bytes() == pipeline.eval_json
    # Nothing random or wall-clock in git-tracked files or DVC hashes (dvc.lock holds the hash of
    # every output, models/ and reports/ included): two runs from clean on one machine leave the
    # same tree, so committing after `dvc repro` and running it again leaves `git status` clean.
    again = tracked_files(other)
    assert sorted(again) == sorted(pipeline.tracked)
    assert [name for name in sorted(again) if again[name] != pipeline.tracked[name]] == []
    client = MlflowClient(store)
    new = client.get_run(json.loads((other / "checkpoints" / "run.json").read_text())["run_id"])
    assert new.data.tags["reproduces"] == first_id
    assert new.data.metrics["test/acc"] == client.get_run(first_id).data.metrics["test/acc"]


@contextlib.contextmanager
def training_in_background(work: Path, *dvc_args: str) -> Iterator[Path]:
    """`dvc *dvc_args` running, from the moment its train stage has started; it must end well."""
    log = work / "first.log"
    with log.open("w") as out:
        first = subprocess.Popen(
            [str(BIN / "dvc"), *dvc_args], cwd=work, stdout=out, stderr=subprocess.STDOUT, env=pipeline_env()
        )
        deadline = time.monotonic() + 120
        while "Running stage 'train'" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        yield log
        assert first.wait(timeout=300) == 0, log.read_text()


def test_a_second_repro_while_one_runs_is_refused(pipeline):
    work = pipeline.work
    with training_in_background(work, "repro", "--force", "--single-item", "train"):
        second = run(work, str(BIN / "dvc"), "repro", ok=False)
    assert second.returncode != 0
    assert "lock" in (second.stdout + second.stderr).lower()


def test_a_second_exp_run_while_one_trains_is_refused_before_it_writes_params(pipeline):
    """DVC releases its lock while a stage runs, and `dvc exp run` writes its overrides into
    params.yaml before it asks for a stage's lock: the stage holds DVC's lock, so the second
    command stops at the start and the first trains, evaluates and records only its own values."""
    work = pipeline.work
    with training_in_background(work, "exp", "run", "-S", "trainer.max_epochs=4"):
        time.sleep(1)  # the stage's process has started (DVC has let go of its lock)
        params = (work / "params.yaml").read_text()
        second = run(work, str(BIN / "dvc"), "exp", "run", "-S", "optim.lr=0.01", ok=False)
        assert (work / "params.yaml").read_text() == params  # refused before it wrote its overrides
    assert second.returncode != 0 and "Unable to acquire lock" in second.stdout + second.stderr
    assert json.loads((work / "metrics" / "train.json").read_text())["epochs"] == 4
    run_id = json.loads((work / "checkpoints" / "run.json").read_text())["run_id"]
    recorded = MlflowClient(f"sqlite:///{work / 'mlflow.db'}").get_run(run_id).data.params
    assert (recorded["trainer.max_epochs"], recorded["optim.lr"]) == ("4", "0.001")


def test_dvc_keeps_checkpoints_so_a_killed_train_stage_resumes(pipeline):
    """`checkpoints/` is not a stage out: DVC's cleanup before the rerun leaves it for resuming."""
    import psutil

    work = pipeline.work
    # Enough epochs that the kill lands mid-training, and a last.ckpt every epoch.
    reprovision(work, "params", "trainer.max_epochs=30", "trainer.checkpoint_every_s=0")
    last = work / "checkpoints" / "last.ckpt"
    first = subprocess.Popen(
        [str(BIN / "dvc"), "repro", "--force", "--single-item", "train"],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=pipeline_env(),
    )
    started = last.stat().st_mtime if last.exists() else 0
    deadline = time.monotonic() + 120
    while not (last.exists() and last.stat().st_mtime > started) and time.monotonic() < deadline:
        time.sleep(0.05)
    train = next(p for p in psutil.Process(first.pid).children(recursive=True) if "train" in p.cmdline())
    train.terminate()  # SIGTERM, as a scheduler or `kill` sends it
    output = first.communicate(timeout=120)[0]
    assert first.returncode != 0, output
    assert "failed to reproduce 'train'" in output.lower() or "error" in output.lower()

    resumed = dvc(work, "repro")
    assert "train: resuming from checkpoints/last.ckpt" in resumed
    # The model is a function of config, data and code: trained to the same epochs it equals the
    # first run's, so DVC may restore the report from its run cache instead of rerunning it.
    assert ran(resumed)[:2] == ["train", "evaluate"]
    assert "Running stage 'report'" in resumed or "Stage 'report' is cached" in resumed


def test_champion_alias_follows_the_best_validation_accuracy(pipeline):
    """Every pipeline run registered a version; `champion` moved only on a strictly better val/acc."""
    client = MlflowClient(f"sqlite:///{pipeline.work / 'mlflow.db'}")
    versions = sorted(client.search_model_versions("name='digits-classification'"), key=lambda v: int(v.version))
    scores = [float(v.tags["val_acc"]) for v in versions]
    assert len(versions) >= 4 and min(scores) < max(scores)  # a worse run (max_epochs=1) came second
    champion = client.get_model_version_by_alias("digits-classification", "champion")
    assert int(champion.version) == int(versions[scores.index(max(scores))].version)  # first to reach the best
    first = client.get_model_version("digits-classification", "1")
    assert first.run_id == pipeline.run_id


def digit_file(work, path, index: int = 0):
    """A test image as a user's file: bigger than the model's input, and RGBA, not greyscale."""
    from PIL import Image

    image = load_split(work / "data" / "split", "test")["x"][index, 0]
    Image.fromarray(image).resize((50, 50)).convert("RGBA").save(path)
    return path


def test_predict_answers_the_same_from_a_checkpoint_a_run_and_the_registry(pipeline, tmp_path, monkeypatch, capsys):
    from reprovision.cli import main

    work = pipeline.work
    image = digit_file(work, tmp_path / "digit.png")
    run_id = json.loads((work / "checkpoints" / "run.json").read_text())["run_id"]
    answers = [
        json.loads(reprovision(work, "predict", str(image), "--model", model, "--json", "--top-k", "10").stdout)
        for model in ("models/model.ckpt", f"runs:/{run_id}/model")
    ]
    assert answers[0] == answers[1]
    top = answers[0][0]["top"]
    assert len(top) == 10 and abs(sum(t["probability"] for t in top) - 1) < 1e-5
    labels = load_split(work / "data" / "split", "test")["y"]
    classes = json.loads((work / "data" / "split" / "summary.json").read_text())["classes"]
    assert top[0]["class"] == classes[labels[0]]  # a well-trained model gets this one right
    # The same command in this process (the two above proved the installed one): no start-up each.
    monkeypatch.chdir(work)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    capsys.readouterr()
    assert main(["predict", str(image), "--model", "models:/digits-classification@champion"]) == 0
    table = capsys.readouterr().out
    assert str(image) in table and len(table.splitlines()) == 1 + 3  # header, then the top 3
    assert main(["predict", str(work / "params.yaml")]) == 2
    assert "not a readable image" in capsys.readouterr().err
    assert main(["predict", str(image), "--model", "models:/no-such-model@champion"]) == 2
    assert "no-such-model" in capsys.readouterr().err


def test_mlflow_models_serve_answers_http_requests_like_predict(pipeline, tmp_path):
    import base64
    import socket
    import urllib.request

    work = pipeline.work
    run_id = json.loads((work / "checkpoints" / "run.json").read_text())["run_id"]
    image = digit_file(work, tmp_path / "digit.png", index=1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            f"runs:/{run_id}/model",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=work,
        env=pipeline_env(MLFLOW_TRACKING_URI=f"sqlite:///{work / 'mlflow.db'}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
                time.sleep(0.5)
        body = {"dataframe_split": {"columns": ["image"], "data": [[base64.b64encode(image.read_bytes()).decode()]]}}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        served = json.loads(urllib.request.urlopen(request, timeout=30).read())["predictions"][0]
    finally:
        server.terminate()
        server.wait(timeout=30)
    predicted = json.loads(reprovision(work, "predict", str(image), "--json", "--top-k", "10").stdout)[0]["top"]
    assert served["predicted"] == predicted[0]["class"]
    for guess in predicted:
        assert abs(served[f"p_{guess['class']}"] - guess["probability"]) < 1e-6
    # What the model declares: the signature and an input example, as the MLflow UI shows them.
    model_dir = Path(mlflow_download(work, f"runs:/{run_id}/model", tmp_path / "model"))
    meta = yaml.safe_load((model_dir / "MLmodel").read_text())
    assert json.loads(meta["signature"]["inputs"]) == [{"type": "string", "name": "image", "required": True}]
    assert (model_dir / "serving_input_example.json").is_file()
    assert not list(model_dir.rglob("*.pkl"))  # code and a weights-only checkpoint, no pickled model


def mlflow_download(work, uri: str, dest) -> str:
    import mlflow

    from reprovision.tracking import fluent_api

    dest.mkdir()
    with fluent_api(f"sqlite:///{work / 'mlflow.db'}"):  # see predict.open_model: the global URI is needed
        return mlflow.artifacts.download_artifacts(uri, dst_path=str(dest))


def test_queued_experiments_run_in_parallel_workers_each_its_own_mlflow_run(pipeline):
    work = pipeline.work
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("reprovision").experiment_id
    before = {r.info.run_id for r in client.search_runs([experiment])}
    for lr in ("0.002", "0.004"):
        dvc(work, "exp", "run", "--queue", "-S", f"optim.lr={lr}", "-S", "trainer.max_epochs=2")
    dvc(work, "queue", "start", "-j", "2")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = dvc(work, "queue", "status")
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(2)
    assert status.count("Success") >= 2, status
    # Each worker ran in its own copy of the workspace and tracked into the project's store.
    new = [r for r in client.search_runs([experiment]) if r.info.run_id not in before]
    assert sorted(r.data.params["optim.lr"] for r in new) == ["0.002", "0.004"]
    assert all(r.info.status == "FINISHED" and r.data.tags.get("dvc_exp_name") for r in new)


def test_a_teammate_pulls_from_a_dvc_remote_and_nothing_reruns(pipeline, tmp_path):
    """`git clone && dvc pull && dvc repro`: the data and models come from the remote, nothing is
    downloaded again or retrained."""
    work = pipeline.work
    remote = tmp_path / "remote"
    dvc(work, "remote", "add", "--default", "team", str(remote))
    assert ran(dvc(work, "repro")) == []  # the workspace is a finished pipeline run
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    run(work, *git, "add", "-A")
    run(work, *git, "commit", "-qm", "results")
    assert "pushed" in dvc(work, "push")
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(work), str(clone))
    assert not (clone / "data").exists() or not any((clone / "data").glob("*/*"))
    dvc(clone, "pull")
    assert (clone / "models" / "model.ckpt").read_bytes() == (work / "models" / "model.ckpt").read_bytes()
    output = dvc(clone, "repro")
    assert ran(output) == [] and "up to date" in output.lower()
    assert dvc(clone, "status").strip().endswith("Data and pipelines are up to date.")
