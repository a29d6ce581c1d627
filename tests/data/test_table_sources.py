"""Table datasets: Keras's boston_housing, scikit-learn's diabetes and the user's CSV, downloaded and
read through the registry; every refusal of a bad CSV is one line naming what to fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.data.formats import data_config, npz_bytes, sha256, use_fixture_checksums

from reprovision.data.sources import download, read
from reprovision.errors import DataError

BOSTON = ["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT"]


def test_boston_housing_is_shuffled_then_split_as_keras_does(tmp_path, monkeypatch):
    # Row i: every feature i + column / 100, target 10 + i: each row names itself.
    x = np.arange(30)[:, None] + np.arange(13)[None, :] / 100
    npz = npz_bytes(x=x, y=10.0 + np.arange(30))
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "boston_housing.npz").write_bytes(npz)
    use_fixture_checksums(monkeypatch, "boston_housing", **{"boston_housing.npz": {"file_sha256": sha256(npz)}})
    cfg = data_config("data=boston_housing", "model=mlp", f"data.mirror={tmp_path / 'mirror'}")
    download(cfg, tmp_path / "raw")
    raw = read("boston_housing", tmp_path / "raw", cfg)
    order = np.random.RandomState(113).permutation(30)  # Keras: shuffle, then the first 80% train
    cut = int(30 * (1 - 0.2))
    assert (
        raw.y_train.tolist() == (10.0 + order[:cut]).tolist() and raw.y_test.tolist() == (10.0 + order[cut:]).tolist()
    )
    assert np.allclose(raw.x_test, x[order[cut:]]) and raw.x_train.dtype == raw.y_train.dtype == np.float32
    assert (raw.kind, raw.task, raw.features, raw.target, raw.classes) == ("table", "regression", BOSTON, "MEDV", [])


def test_diabetes_is_scikit_learns_raw_table(tmp_path):
    from sklearn.datasets import load_diabetes

    cfg = data_config("data=diabetes", "model=mlp")
    manifest = download(cfg, tmp_path / "raw")
    assert set(manifest["files"]) == {"diabetes_data_raw.csv.gz", "diabetes_target.csv.gz"}
    raw = read("diabetes", tmp_path / "raw", cfg)
    expected = load_diabetes(scaled=False)
    assert raw.x_train.shape == (442, 10) and raw.x_test is None and raw.y_test is None
    assert np.allclose(raw.x_train, expected.data) and np.allclose(raw.y_train, expected.target)
    assert raw.features == ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    assert (raw.task, raw.target, raw.y_train.dtype) == ("regression", "progression", np.float32)


# --- the user's CSV -------------------------------------------------------------------------------


def table(tmp_path: Path, text: str | bytes, *overrides: str, target: str = "price"):
    path = tmp_path / "houses.csv"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return data_config("data=table", f"data.path={path}", f"data.target={target}", "model=mlp", *overrides)


def load(tmp_path: Path, cfg):
    download(cfg, tmp_path / "raw")
    return read("table", tmp_path / "raw", cfg)


def test_table_regression_target_and_features_in_file_order(tmp_path):
    cfg = table(tmp_path, "rooms,price, area\n3,250.5,80\n4,310,95.5\n\n2,199,60\n")
    raw = load(tmp_path, cfg)
    assert raw.features == ["rooms", "area"] and raw.target == "price" and raw.task == "regression"
    assert raw.x_train.tolist() == [[3, 80], [4, 95.5], [2, 60]] and raw.x_train.dtype == np.float32
    assert raw.y_train.tolist() == [250.5, 310, 199] and raw.y_train.dtype == np.float32
    assert raw.x_test is None and raw.classes == []


def test_table_classification_classes_are_the_sorted_labels(tmp_path):
    cfg = table(tmp_path, "a,grade\n1,10\n2,9\n3,10\n4,2\n", "data.task=classification", target="grade")
    raw = load(tmp_path, cfg)
    assert raw.classes == ["2", "9", "10"] and raw.y_train.tolist() == [2, 1, 2, 0]  # numerically, not "10" < "2"
    assert raw.y_train.dtype == np.int64 and raw.task == "classification"
    cfg = table(tmp_path, "a,kind\n1,pear\n2,apple\n3,fig\n", "data.task=classification", target="kind")
    assert load(tmp_path, cfg).classes == ["apple", "fig", "pear"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "table: the CSV file is empty; it needs a header row"),
        ("rooms,price\n", "table: the CSV file has a header row but no data rows"),
        ("rooms,area\n1,2\n", "table: no column 'price' (data.target); the columns are rooms, area"),
        ("rooms,price\n1,2\nthree,4\n", "table: column 'rooms' on line 3 is 'three', not a number"),
        ("rooms,price\n1,2\n3, \n", "table: column 'price' has no value on line 3; fill it in or remove the row"),
        ("rooms,price\n,2\n", "table: column 'rooms' has no value on line 2"),
        ("rooms,price\n1,cheap\n", "column 'price' on line 2 is 'cheap', not a number (labels? set data.task="),
        ("rooms,price\n1,2,3\n", "table: line 2 has 3 fields, the header 2"),
        ("rooms,price\n1,inf\n", "table: column 'price' on line 2 is 'inf', not a finite number"),
        ("rooms,price\n1,2\n1e39,3\n", "table: column 'rooms' on line 3 is '1e39', beyond the float32 range"),
        ("rooms,price\n1,-4e38\n", "table: column 'price' on line 2 is '-4e38', beyond the float32 range"),
        ("rooms,rooms,price\n1,2,3\n", "table: column 'rooms' appears twice in the header row"),
        ("price\n1\n", "table: no feature columns besides the target 'price'"),
        (b"rooms,price\n1,2\n\xff,3\n", "table: line 3 is not UTF-8 text; save the CSV as UTF-8"),
        ('rooms,price\n1,"2\n', "table: line 2: unexpected end of data"),
        ('rooms,price\n1,"2"x\n', "table: line 2: ',' expected after '\"'"),
    ],
)
def test_table_refusals_name_column_line_and_value(tmp_path, text, message):
    with pytest.raises(DataError) as err:
        download(table(tmp_path, text), tmp_path / "raw")
    assert message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "raw").exists()  # a bad table never reaches data/raw


def test_table_with_a_single_label_is_refused_for_classification(tmp_path):
    cfg = table(tmp_path, "a,kind\n1,pear\n2,pear\n", "data.task=classification", target="kind")
    with pytest.raises(DataError, match=r"column 'kind' holds one value \('pear'\)"):
        load(tmp_path, cfg)


def test_table_larger_than_the_download_limit_is_refused_before_copying(tmp_path):
    cfg = table(tmp_path, "rooms,price\n" + "1,2\n" * (1 << 18), "data.download.max_mib=1")
    with pytest.raises(DataError, match=r"1,048,588 bytes, over data\.download\.max_mib=1"):
        download(cfg, tmp_path / "raw")


def test_a_regression_dataset_refuses_a_classification_task(tmp_path):
    cfg = data_config("data=diabetes", "model=mlp")
    download(cfg, tmp_path / "raw")
    cfg.task = "classification"  # past config's own check, as a caller building a config by hand could
    with pytest.raises(DataError, match=r"^data=diabetes is a regression dataset: data\.task=classification"):
        read("diabetes", tmp_path / "raw", cfg)
