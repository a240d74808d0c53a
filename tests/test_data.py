"""Loading tables: built-in and files, digests, and the checks that guard the pipeline."""

import hashlib

import numpy as np
import pandas as pd
import pytest

from logistic_regression.data import load, sha256_frame
from logistic_regression.errors import DataError


def write_table(path, n=40, seed=0, **extra_columns):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {"x1": rng.normal(size=n), "x2": rng.normal(size=n), "label": np.tile([0, 1], n // 2)}
    )
    for name, values in extra_columns.items():
        frame[name] = values
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return frame


def test_builtin_dataset_loads_with_a_stable_digest():
    first = load("breast_cancer", "target")
    second = load("breast_cancer", "target")
    assert first.features.shape == (569, 30)
    assert set(first.target.unique()) == {0, 1}
    assert first.ref.kind == "builtin"
    assert (
        first.ref.digest
        == second.ref.digest
        == sha256_frame(first.features.assign(target=first.target))
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_digest_is_the_sha256_of_its_bytes(tmp_path, suffix):
    path = tmp_path / f"table{suffix}"
    write_table(path)
    dataset = load(str(path), "label")
    assert dataset.ref.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert dataset.ref.uri == str(path.resolve())
    assert list(dataset.features.columns) == ["x1", "x2"]
    assert dataset.ref.rows == 40


def test_changing_the_file_changes_the_digest(tmp_path):
    path = tmp_path / "t.csv"
    write_table(path, seed=0)
    before = load(str(path), "label").ref.digest
    write_table(path, seed=1)
    assert load(str(path), "label").ref.digest != before


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("missing.csv", "no such file"),
        ("table.json", "is not supported"),
        ("ftp://host/t.csv", "is not supported"),
        ("iris", "is not supported"),
    ],
)
def test_unusable_inputs_are_named(tmp_path, uri, expected):
    with pytest.raises(DataError) as caught:
        load(str(tmp_path / uri) if not uri.startswith(("ftp", "iris")) else uri, "label")
    assert expected in str(caught.value)
    assert "data.input=" in str(caught.value)


def test_missing_target_column_lists_the_columns(tmp_path):
    path = tmp_path / "t.csv"
    write_table(path)
    with pytest.raises(DataError, match=r"data.target='y' is not a column .*columns are: x1, x2"):
        load(str(path), "y")


def test_non_binary_target_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    write_table(path, label3=np.tile([0, 1, 2, 3], 10))
    with pytest.raises(DataError, match="has 4 classes; the kit needs exactly 2"):
        load(str(path), "label3")


def test_text_target_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    write_table(path, kind=np.tile(["cat", "dog"], 20))
    with pytest.raises(DataError, match="non-numeric values"):
        load(str(path), "kind")


def test_text_feature_is_named(tmp_path):
    path = tmp_path / "t.csv"
    write_table(path, colour=np.tile(["red", "blue"], 20))
    with pytest.raises(DataError, match="not numeric in .*: colour"):
        load(str(path), "label")


def test_missing_feature_values_are_named(tmp_path):
    path = tmp_path / "t.csv"
    values = np.ones(40)
    values[3] = np.nan
    write_table(path, gap=values)
    with pytest.raises(DataError, match="missing values .*: gap"):
        load(str(path), "label")


def test_unreadable_file_is_one_line(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataError) as caught:
        load(str(path), "label")
    assert "could not be read" in str(caught.value)
    assert "\n" not in str(caught.value)
