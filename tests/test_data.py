"""Loading tables: built-in and files, digests, and the checks that guard the pipeline."""

import hashlib

import numpy as np
import pandas as pd
import pytest

from logistic_regression.data import feature_limit, load, sha256_frame
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


def write_column(path, values, name="x2"):
    """The usual table with one more feature column holding `values` exactly."""
    write_table(path, n=len(values), **{name: values})


@pytest.mark.parametrize(
    ("value", "shown"), [(np.inf, "inf"), (-np.inf, "-inf"), (1.7e308, "1.7e+308")]
)
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_infinite_or_overflowing_features_are_named_with_their_row(tmp_path, value, shown, suffix):
    path = tmp_path / f"t{suffix}"
    values = np.ones(40)
    values[6] = value
    write_column(path, values)
    with pytest.raises(DataError) as caught:
        load(str(path), "label")
    message = str(caught.value)
    assert f"feature column 'x2' in {path} holds {shown} at data row 7" in message
    assert "contains NaN" not in message and "\n" not in message


def test_a_number_beyond_float64_in_a_csv_is_refused_as_infinite(tmp_path):
    """1e400 has no float64: pandas reads it as inf, and the kit says so."""
    path = tmp_path / "t.csv"
    path.write_text(
        "x1,label\n" + "".join(f"{'1e400' if i == 2 else i},{i % 2}\n" for i in range(8))
    )
    with pytest.raises(DataError, match=r"'x1' .* holds inf at data row 3 .*must be finite"):
        load(str(path), "label")


def test_the_feature_limit_is_where_standardising_stops_overflowing(tmp_path):
    """At the limit scikit-learn's scaler computes a finite variance and scales the column;
    4x beyond it the variance overflows (the sum of squared deviations passes float64's
    maximum) and the column would silently stay unscaled, or turn into NaN for larger
    values: what the kit refuses."""
    import warnings

    from sklearn.preprocessing import StandardScaler

    n = 40
    limit = feature_limit(n)
    at = np.tile([limit, -limit], n // 2).reshape(-1, 1)
    scaler = StandardScaler().fit(at)
    assert np.isfinite(scaler.var_).all() and np.abs(scaler.transform(at)).max() <= 1.0 + 1e-9
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not np.isfinite(StandardScaler().fit(4 * at).var_).all()

    write_column(tmp_path / "at.csv", at.ravel())
    assert load(str(tmp_path / "at.csv"), "label").features["x2"].abs().max() == limit
    write_column(tmp_path / "beyond.csv", at.ravel() * 1.01)
    with pytest.raises(DataError, match=r"must lie within ±.* or standardising them overflows"):
        load(str(tmp_path / "beyond.csv"), "label")


@pytest.mark.parametrize(
    ("classes", "accepted"),
    [((0.0, 1.0), True), ((1.0, 2.0), True), ((-1, 1), True), ((0.5, 1.5), False)],
)
def test_float_targets_must_be_two_whole_numbers(tmp_path, classes, accepted):
    path = tmp_path / "t.csv"
    write_table(path, y=np.tile(classes, 20))
    if accepted:
        assert set(load(str(path), "y").target.unique()) == set(classes)
        return
    with pytest.raises(DataError) as caught:
        load(str(path), "y")
    assert "data.target='y' holds the classes 0.5 and 1.5" in str(caught.value)
    assert "whole-number classes" in str(caught.value)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_table_without_rows_says_so(tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    frame = pd.DataFrame({"x1": pd.Series(dtype=float), "label": pd.Series(dtype=object)})
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    with pytest.raises(DataError, match=r"has no rows \(only a header\)"):
        load(str(path), "label")
