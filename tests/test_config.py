"""Config: conf/ composes into the committed params.yaml, and bad values stop with one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from reprovision import config
from reprovision.config import compose, flatten, load_config, validate
from reprovision.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_committed_params_equal_composition_of_conf(root):
    composed = OmegaConf.to_container(compose(root / "conf"))
    committed = yaml.safe_load((root / "params.yaml").read_text())
    assert committed == composed, "params.yaml is stale: run `make params` and commit it"


def test_config_dataset_names_match_the_registry():
    # config spells the names out so that it need not import the dataset readers: keep them equal.
    from reprovision.config.data import REGRESSION_DATA
    from reprovision.data import sources

    assert (config.IMAGEFOLDER, config.TABLE, config.TEXTFOLDER) == (
        sources.IMAGEFOLDER,
        sources.TABLE,
        sources.TEXTFOLDER,
    )
    assert config.DATASETS == sources.DATASETS == tuple(sources.SOURCES)
    assert len(config.DATASETS) == len(set(config.DATASETS))
    # Read from data.path, and predicting a number unless data.task says otherwise: the same in both.
    assert set(config.USER_DATA) == {name for name, s in sources.SOURCES.items() if s.from_path is not None}
    regression = {name for name, s in sources.SOURCES.items() if s.task in ("regression", None)}
    assert set(REGRESSION_DATA) == regression


def test_default_config_is_valid(root):
    cfg = load_config(root / "params.yaml")
    assert cfg.data.name == "digits"
    assert 0 < cfg.data.val_fraction < 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.val_fraction=1.5"], "data.val_fraction=1.5 is out of range"),
        (["trainer.max_epochs=0"], "trainer.max_epochs=0 is out of range"),
        (["data.batch_size=abc"], "data.batch_size"),
        (["+data.shuffle=true"], "data.shuffle is not a known setting: allowed keys are name,"),
        (["+optim.momentum=0.9"], "optim.momentum is not a known setting"),  # adam has no momentum
        (["model=resnet"], "Available options in 'model': cnn, fast_cnn, keras_cnn, mlp, net,"),
        (["trainer.precision=64"], "trainer.precision='64' is out of range: expected one of 32"),
        (["split.refit=true"], "split.refit=true retrains for the epoch count the folds choose: set split.folds"),
    ],
)
def test_bad_values_name_the_key(root, overrides, message):
    with pytest.raises(ConfigError) as err:
        validate(compose(root / "conf", overrides))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_group_options_compose(root):
    cfg = validate(compose(root / "conf", ["model=mlp", "optim=momentum", "optim.lr=0.01"]))
    assert (cfg.model.name, cfg.optim.name, cfg.optim.lr, cfg.optim.momentum) == (
        "mlp",
        "momentum",
        0.01,
        0.9,
    )
    exp = validate(compose(root / "conf", ["experiment=digits_mlp_sgd"]))
    assert (exp.model.name, exp.optim.name, exp.trainer.max_epochs) == ("mlp", "momentum", 20)


USER_PATHS = {"imagefolder": ["data.path=x"], "textfolder": ["data.path=x"], "table": ["data.path=x", "data.target=y"]}


@pytest.mark.parametrize("data", sorted(p.stem for p in (ROOT / "conf" / "data").glob("[!_]*.yaml")))
def test_each_data_option_picks_a_net_that_reads_it_unless_told_another(root, data):
    """No model= needed: images get the cnn, tables and text the mlp; an explicit net that reads the
    data is kept, and one that cannot is refused in one line naming the one to choose."""
    overrides = [f"data={data}", *USER_PATHS.get(data, [])]
    cfg = validate(compose(root / "conf", overrides))
    assert cfg.model.name == ("cnn" if cfg.data.kind == "image" else "mlp")
    if cfg.data.kind == "text":
        assert validate(compose(root / "conf", [*overrides, "model=text_cnn"])).model.name == "text_cnn"
    else:
        assert validate(compose(root / "conf", [*overrides, "model=mlp"])).model.name == "mlp"
    other = "cnn" if cfg.data.kind != "image" else "text_cnn"
    with pytest.raises(
        ConfigError, match=f"model={other} reads .* data, not {cfg.data.name}'s {cfg.data.kind}: choose"
    ):
        validate(compose(root / "conf", [*overrides, f"model={other}"]))


def test_recipes_keep_the_net_they_set(root):
    nets = {e: validate(compose(root / "conf", [f"experiment={e}"])).model.name for e in ("imdb_text_cnn", "mnist_cnn")}
    assert nets == {"imdb_text_cnn": "text_cnn", "mnist_cnn": "cnn"}


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml")))
def test_every_experiment_composes_into_a_valid_config(root, experiment):
    cfg = validate(compose(root / "conf", [f"experiment={experiment}"]))
    if experiment.endswith("_fast"):  # the GPU speed recipes
        assert (cfg.model.name, cfg.trainer.precision, cfg.trainer.compile) == ("fast_cnn", "bf16-mixed", True)


def test_flatten_gives_dotted_keys(root):
    flat = flatten(load_config(root / "params.yaml"))
    assert flat["optim.lr"] == 0.001
    assert flat["model.name"] == "cnn"
    assert all(not isinstance(v, dict) for v in flat.values())


def test_stage_exits_2_with_one_line_on_bad_params(tmp_path, root):
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"]["val_fraction"] = 1.5
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(params))
    out = tmp_path / "raw"
    proc = subprocess.run(
        [sys.executable, "-m", "reprovision", "download", "--params", str(bad), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "data.val_fraction=1.5" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data=imagefolder", "data.crop_scale=[0.5,0.25]"], "data.crop_scale"),
        (["data=imagefolder", "data.crop_scale=[0,1]"], "data.crop_scale"),
        (["data=imagefolder", "data.crop_padding=4"], "both crop"),
        (["data=diabetes", "model=mlp", "data.crop_scale=[0.5,1]"], "augments images"),
    ],
)
def test_resized_crops_out_of_range_together_with_padded_crops_or_on_a_table_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose(ROOT / "conf", overrides))
