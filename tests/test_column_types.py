"""Columns of every dtype pandas reads from a user's file: each trains, the logged model
loads and predicts on the rows read back from the same file (pd.read_csv, read_parquet,
read_excel), never built by hand; dates and durations are left out with a note."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from logistic_regression import train
from logistic_regression.tracking.models import model_signature

ROWS = 90


def labelled(rng: np.random.Generator) -> pd.DataFrame:
    """A learnable binary table: `x` tells the label most of the time."""
    label = np.tile(["no", "yes"], ROWS // 2)
    return pd.DataFrame({"x": rng.normal(size=ROWS) + 2 * (label == "yes"), "label": label})


def every_dtype() -> pd.DataFrame:
    """One column of each kind a Parquet file keeps: timestamps (naive and tz-aware),
    calendar dates and times of day (read back as Python objects), a duration, whole
    numbers, nullable integers with gaps, booleans, categories (of text, of numbers)."""
    rng = np.random.default_rng(7)
    frame = labelled(rng)
    frame["when"] = pd.date_range("2024-01-01 08:00", periods=ROWS, freq="37h")
    frame["when_utc"] = pd.date_range("2024-03-01", periods=ROWS, freq="D", tz="Europe/Paris")
    frame["born"] = [
        dt.date(1950, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 20000, ROWS)
    ]
    frame["opens"] = [dt.time(int(h), 30) for h in rng.integers(6, 11, ROWS)]
    frame["waited"] = pd.to_timedelta(rng.integers(0, 5000, ROWS), unit="s")
    frame["count"] = rng.integers(0, 40, ROWS)
    frame["visits"] = pd.array([v if v % 6 else None for v in rng.integers(1, 9, ROWS)], "Int64")
    frame["member"] = rng.random(ROWS) < 0.4
    flags = [bool(v) if i % 9 else None for i, v in enumerate(rng.integers(0, 2, ROWS))]
    frame["opted_in"] = pd.array(flags, dtype="boolean")
    frame["plan"] = pd.Categorical(rng.choice(["basic", "plus", "pro"], ROWS))
    frame["tier"] = pd.Categorical(rng.choice([1, 2, 3], ROWS))  # a CSV reads it as int64
    return frame


def trained(path: Path, *overrides: str) -> tuple:
    """Train on `path` in-process; the run and its logged model, loaded as pyfunc."""
    args = [f"data.input={path}", "data.target=label", "evaluation.cv_folds=3", *overrides]
    assert train.main(args) == 0
    client = MlflowClient()
    experiment = client.get_experiment_by_name("logistic-regression").experiment_id
    (run,) = client.search_runs([experiment])
    (logged,) = client.search_logged_models(experiment_ids=[experiment])
    assert run.info.status == "FINISHED" and str(logged.status) == "READY"
    return run, mlflow.pyfunc.load_model(f"models:/{logged.model_id}")


def run_predictions(run) -> pd.DataFrame:
    return pd.read_csv(run.data.tags["kit.output_path"])


def assert_answers_like_the_run(model, rows: pd.DataFrame, run) -> None:
    """The model's answers on the rows read back equal the run's own test predictions."""
    recorded = run_predictions(run)
    answered = model.predict(rows.drop(columns="label").iloc[recorded["row"]])
    assert list(answered) == recorded["prediction"].tolist()


def test_a_parquet_table_of_every_dtype_trains_and_its_model_takes_the_rows_read_back(
    tmp_path, caplog
):
    path = tmp_path / "customers.parquet"
    every_dtype().to_parquet(path)
    run, model = trained(path)

    warnings = run.data.tags["kit.warnings"]
    left_out = {"when": "dates", "when_utc": "dates", "born": "dates", "opens": "times of day"}
    for column, kind in [*left_out.items(), ("waited", "durations")]:
        assert f"feature column {column!r} holds {kind}" in warnings
    assert "'when' holds dates" in caplog.text  # the terminal's line
    report = (Path(run.info.artifact_uri.removeprefix("file://")) / "report.html").read_text()
    assert "left out of the model" in report
    features = (Path(run.info.artifact_uri.removeprefix("file://")) / "features.txt").read_text()
    assert not {*left_out, "waited"} & set(features.split())
    assert len(features.split()) < 12  # no column per timestamp

    inputs = model.metadata.get_input_schema().input_names()
    assert inputs == ["x", "count", "visits", "member", "opted_in", "plan", "tier"]
    back = pd.read_parquet(path)
    assert str(back["visits"].dtype) == "Int64" and str(back["plan"].dtype) == "category"
    assert isinstance(back["born"][0], dt.date) and back["born"].dtype == object
    assert_answers_like_the_run(model, back, run)
    csv = tmp_path / "customers.csv"
    back.to_csv(csv, index=False)
    assert pd.read_csv(csv)["tier"].dtype == "int64"
    assert_answers_like_the_run(model, pd.read_csv(csv), run)


def whole_numbers() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    frame = labelled(rng)
    frame["year"] = rng.integers(1990, 2024, ROWS)
    frame["flag"] = rng.random(ROWS) < 0.5
    return frame


def test_a_csv_whole_number_column_is_taken_as_read_with_or_without_gaps(tmp_path):
    """int64 as read_csv gives it (MLflow refuses int64 for a `double` column), the same
    column with a gap (float64, refused for a `long` one), and booleans."""
    frame = whole_numbers()
    path = tmp_path / "years.csv"
    frame.to_csv(path, index=False)
    run, model = trained(path)
    back = pd.read_csv(path)
    assert back["year"].dtype == "int64" and back["flag"].dtype == "bool"
    assert_answers_like_the_run(model, back, run)

    gap = tmp_path / "years_gap.csv"
    frame.assign(year=frame["year"].where(frame.index != 3)).to_csv(gap, index=False)
    with_gap = pd.read_csv(gap)
    assert with_gap["year"].dtype == "float64"
    assert len(model.predict(with_gap.drop(columns="label"))) == ROWS  # the gap is imputed
    rows = run_predictions(run)["row"]
    unchanged = with_gap.drop(columns="label").iloc[rows].drop(index=3, errors="ignore")
    expected = run_predictions(run).set_index("row")["prediction"].loc[unchanged.index]
    assert list(model.predict(unchanged)) == expected.tolist()


def test_a_csv_with_gaps_in_training_takes_whole_numbers_later(tmp_path):
    frame = whole_numbers()
    gap = tmp_path / "gaps.csv"
    frame.assign(year=frame["year"].where(frame.index % 10 != 0)).to_csv(gap, index=False)
    run, model = trained(gap)
    full = tmp_path / "full.csv"
    frame.to_csv(full, index=False)
    back = pd.read_csv(full)
    assert back["year"].dtype == "int64"
    assert len(model.predict(back.drop(columns="label"))) == ROWS


def test_a_workbook_column_of_mixed_numbers_and_text_trains_and_predicts(tmp_path):
    """Excel gives a column of codes typed partly as numbers (`3`) and partly as text
    (`3a`) as one object column of ints and strings; the same codes read from a CSV
    are text. Both mean the same categories to the model."""
    rng = np.random.default_rng(5)
    frame = labelled(rng)
    codes = np.array([3, "3a", 12, "b7"], dtype=object)
    frame["code"] = codes[(np.arange(ROWS) + (frame["label"] == "yes") * 2) % 4]
    path = tmp_path / "codes.xlsx"
    frame.to_excel(path, index=False)
    back = pd.read_excel(path)
    assert {type(v) for v in back["code"]} == {int, str}
    run, model = trained(path)
    assert_answers_like_the_run(model, back, run)
    csv = tmp_path / "codes.csv"
    back.to_csv(csv, index=False)
    assert_answers_like_the_run(model, pd.read_csv(csv), run)


def test_dates_written_as_text_are_left_out_unless_listed_as_categorical(tmp_path, caplog):
    """A CSV's dates are text: one-hot encoded they would make a column per day."""
    rng = np.random.default_rng(2)
    frame = labelled(rng)
    days = pd.date_range("2023-01-01", periods=ROWS, freq="D")
    frame["day"] = days.strftime("%Y-%m-%d")
    frame["stamp"] = days.strftime("%d/%m/%Y %H:%M")
    frame.loc[4, "day"] = None
    path = tmp_path / "days.csv"
    frame.to_csv(path, index=False)
    run, model = trained(path)
    warnings = run.data.tags["kit.warnings"]
    assert "'day' holds dates written as text" in warnings and "'stamp'" in warnings
    assert model.metadata.get_input_schema().input_names() == ["x"]
    assert_answers_like_the_run(model, pd.read_csv(path), run)

    MlflowClient().delete_experiment(run.info.experiment_id)
    assert (
        train.main(
            [
                f"data.input={path}",
                "data.target=label",
                "tracking.experiment_name=kept",
                "preprocessing.categorical_columns=[day]",
            ]
        )
        == 0
    )
    client = MlflowClient()
    (kept,) = client.search_runs([client.get_experiment_by_name("kept").experiment_id])
    warned = kept.data.tags["kit.warnings"]
    assert "'day' holds dates" not in warned and "'stamp'" in warned
    # each of its 89 dates a category: more than max_categories, so capped, and said
    assert "categorical column 'day' has 89 different values" in warned


@pytest.mark.parametrize("listed", ["numeric_columns", "categorical_columns"])
def test_a_date_column_listed_as_a_feature_is_refused_before_any_run(tmp_path, capsys, listed):
    path = tmp_path / "dated.parquet"
    every_dtype().to_parquet(path)
    args = [f"data.input={path}", "data.target=label", f"preprocessing.{listed}=[when]"]
    assert train.main(args) == 2
    err = capsys.readouterr().err
    assert "when in" in err and "holds dates or durations" in err and len(err.splitlines()) == 1
    assert MlflowClient().get_experiment_by_name("logistic-regression") is None


def test_a_table_of_dates_only_has_no_features(tmp_path, capsys):
    frame = every_dtype()[["when", "label"]]
    path = tmp_path / "dates.parquet"
    frame.to_parquet(path)
    assert train.main([f"data.input={path}", "data.target=label"]) == 2
    assert (
        "no feature columns besides the target 'label' and columns the kit leaves out (dates"
        in (capsys.readouterr().err)
    )


def test_the_signature_declares_every_column_as_any_and_the_predict_method():
    frame = pd.DataFrame(
        {
            "x": [1.0, 2.0],
            "text": pd.Series(["a", "b"], dtype="str"),
            "mixed": pd.Series([1, "a"], dtype=object),
            "plan": pd.Categorical(["a", "b"]),
        }
    )
    signature = model_signature(frame, np.array(["no", "yes"], dtype=object))
    types = [getattr(t, "name", "Any") for t in signature.inputs.input_types()]
    assert types == ["Any", "Any", "Any", "Any"]
    assert signature.inputs.input_names() == ["x", "text", "mixed", "plan"]
    (method,) = signature.params.params
    assert (method.name, method.default) == ("predict_method", "predict")


def test_a_text_column_of_many_values_is_capped_with_a_note(tmp_path):
    """A job-title-like column (600 values, each in a few rows: not an identifier) is
    one-hot encoded into max_categories columns, not 600, and the run says so."""
    rng = np.random.default_rng(11)
    frame = labelled(rng).sample(n=1800, replace=True, random_state=3).reset_index(drop=True)
    frame["title"] = [f"title {i % 600}" for i in range(len(frame))]
    path = tmp_path / "titles.csv"
    frame.to_csv(path, index=False)
    run, model = trained(path)
    note = run.data.tags["kit.warnings"]
    assert "categorical column 'title' has 600 different values: the model keeps the 49 " in note
    pipeline = model.get_raw_model()
    names = pipeline.named_steps["preprocess"].get_feature_names_out()
    assert sum(name.startswith("title_") for name in names) == 50  # 49 and the infrequent
    rows = pd.read_csv(path).drop(columns="label").head(3).assign(title="never seen")
    assert len(model.predict(rows)) == 3
