"""Importing past results from spreadsheets (CSV and .xlsx) into a real tracking store."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from logistic_regression.__main__ import main as cli
from logistic_regression.errors import DataError
from logistic_regression.importer import import_file

SHEET = [
    ["model", "C", "accuracy", "roc_auc", "owner"],
    ["parameter", "parameter", "metric", "metric", "tag"],
    ["logreg", "0.1", "0.95", "0.991", "aiko"],
    ["logreg", "1.0", "0.97", "0.995", "minho"],
    ["svm", "", "0.96", "", "aiko"],
]


def write(path, rows) -> None:
    frame = pd.DataFrame(rows)
    if path.suffix == ".csv":
        frame.to_csv(path, header=False, index=False)
    else:
        frame.to_excel(path, header=False, index=False)


def runs(experiment: str):
    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id])


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_each_row_becomes_a_run_and_reimporting_adds_nothing(tmp_path, suffix, capsys):
    sheet = tmp_path / f"past{suffix}"
    write(sheet, SHEET)
    assert cli(["import", str(sheet), "--experiment", "past"]) == 0
    assert "imported 3 runs into experiment 'past'" in capsys.readouterr().out
    imported = {run.data.params.get("C", "-"): run for run in runs("past")}
    assert set(imported) == {"0.1", "1.0", "-"}
    first = imported["0.1"]
    assert first.info.status == "FINISHED"
    assert first.data.params == {"model": "logreg", "C": "0.1"}
    assert first.data.metrics == {"accuracy": 0.95, "roc_auc": 0.991}
    assert first.data.tags["owner"] == "aiko" and first.data.tags["kit.import.row"] == "3"
    assert imported["-"].data.metrics == {"accuracy": 0.96}, "empty cells are not recorded"

    assert cli(["import", str(sheet), "--experiment", "past"]) == 0
    assert "imported 0 runs" in capsys.readouterr().out
    assert len(runs("past")) == 3

    write(sheet, [*SHEET, ["logreg", "10", "0.9", "0.98", "minho"]])
    assert import_file(sheet, "past") == (1, 3)
    assert len(runs("past")) == 4


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ((4, 2, "n/a"), "row 5, column 'accuracy': 'n/a' is not a number"),
        ((1, 4, "label"), "row 2, column 'owner': kind 'label' is not allowed"),
        ((3, 3, "nan"), "row 4, column 'roc_auc': 'nan' is not a finite number"),
        ((2, 2, "NaN"), "row 3, column 'accuracy': 'NaN' is not a finite number"),
        ((4, 2, "inf"), "row 5, column 'accuracy': 'inf' is not a finite number"),
        ((2, 3, "-Infinity"), "row 3, column 'roc_auc': '-Infinity' is not a finite number"),
        ((3, 2, "1e400"), "row 4, column 'accuracy': '1e400' is not a finite number"),
        ((2, 2, "#DIV/0!"), "row 3, column 'accuracy': '#DIV/0!' is a formula error"),
        ((3, 3, "#N/A"), "row 4, column 'roc_auc': '#N/A' is a formula error"),
        ((0, 1, "C (inverse)"), "row 1, column 2: the name 'C (inverse)' is not allowed"),
        ((0, 4, "../owner"), "row 1, column 5: the name '../owner' is not allowed"),
        ((2, 0, "x" * 6001), "row 3, column 'model': the value has 6001 characters"),
    ],
)
def test_a_bad_cell_is_named_and_nothing_is_imported(tmp_path, change, expected, capsys):
    row, column, value = change
    rows = [list(line) for line in SHEET]
    rows[row][column] = value
    sheet = tmp_path / "bad.csv"
    write(sheet, rows)
    with pytest.raises(DataError, match=re.escape(expected)):
        import_file(sheet, "bad")
    assert runs("bad") == []
    assert cli(["import", str(sheet), "--experiment", "bad"]) == 2
    assert expected in capsys.readouterr().err


def test_unsupported_or_missing_files_are_one_line(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        import_file(tmp_path / "missing.csv", "x")
    (tmp_path / "notes.txt").write_text("a,b\n")
    with pytest.raises(DataError, match=r"\.txt is not supported; use \.csv or \.xlsx"):
        import_file(tmp_path / "notes.txt", "x")


@pytest.mark.parametrize("content", [b"model,C\nparameter,parameter\n", b""], ids=["csv", "empty"])
def test_a_file_named_xlsx_that_is_no_workbook_is_one_line(tmp_path, content, capsys):
    sheet = tmp_path / "renamed.xlsx"
    sheet.write_bytes(content)
    assert cli(["import", str(sheet), "--experiment", "renamed"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: {sheet}: could not be read: not an Excel workbook (a .xlsx file is a zip); "
        "a CSV file must be named .csv\n"
    )
    assert runs("renamed") == []


def test_a_formula_never_computed_is_refused_not_imported_as_empty(tmp_path):
    """A workbook a program wrote (openpyxl here) holds formulas without their results
    until a spreadsheet program opens and saves it: the metric would silently vanish."""
    from openpyxl import Workbook

    book = Workbook()
    for row in SHEET[:3]:
        book.active.append(row)
    book.active["C3"] = "=0.9+0.05"
    sheet = tmp_path / "uncomputed.xlsx"
    book.save(sheet)
    with pytest.raises(DataError, match="cell C3 holds a formula with no saved result"):
        import_file(sheet, "uncomputed")
    assert runs("uncomputed") == []


def write_xlsx_with_errors(path, errors: dict[str, str]) -> None:
    """SHEET as a real workbook, with formula-error cells (`{"C3": "#DIV/0!"}`) stored as
    Excel stores them (cell type `e`), and numbers as numbers."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    for row in SHEET:
        sheet.append([float(v) if v.replace(".", "", 1).isdigit() else v or None for v in row])
    for address, error in errors.items():
        sheet[address].value = error
        sheet[address].data_type = "e"
    book.save(path)


@pytest.mark.parametrize("error", ["#DIV/0!", "#N/A", "#VALUE!", "#REF!", "#NUM!"])
def test_formula_errors_in_a_workbook_are_named_and_nothing_is_imported(tmp_path, error):
    sheet = tmp_path / "errors.xlsx"
    write_xlsx_with_errors(sheet, {"D4": error})
    with pytest.raises(DataError) as caught:
        import_file(sheet, "errors")
    assert f"row 4, column 'roc_auc': {error!r} is a formula error" in str(caught.value)
    assert runs("errors") == []


def test_a_formula_error_outside_metric_columns_is_kept_as_text(tmp_path):
    sheet = tmp_path / "errors.xlsx"
    write_xlsx_with_errors(sheet, {"E3": "#N/A"})
    assert import_file(sheet, "text-errors") == (3, 0)
    tags = {
        run.data.tags["kit.import.row"]: run.data.tags.get("owner") for run in runs("text-errors")
    }
    assert tags["3"] == "#N/A"


def test_numbers_in_a_workbook_read_as_before(tmp_path):
    """Cells typed as numbers, dates and booleans read as the same text pandas gave them
    (so a row's digest, and re-import, is unchanged from files imported before)."""
    import datetime

    from openpyxl import Workbook

    from logistic_regression.importer import read_sheet

    book = Workbook()
    sheet = book.active
    sheet.append(["C", "acc", "when", "flag", "n"])
    sheet.append(["parameter", "metric", "tag", "tag", "metric"])
    sheet.append([0.1, 0.95, datetime.datetime(2024, 1, 2, 3, 4, 5), True, 3])
    sheet.append([1.0, None, datetime.date(2024, 1, 2), False, 1e20])
    sheet.append([1e-7, 2.5, None, "x", 12345678901234567890])
    path = tmp_path / "typed.xlsx"
    book.save(path)
    expected = pd.read_excel(path, header=None, dtype=str, keep_default_na=False)
    assert read_sheet(path) == expected.to_numpy().tolist()


def test_the_row_numbers_are_the_files_own_with_blank_rows(tmp_path):
    sheet = tmp_path / "gaps.csv"
    sheet.write_text("C,acc\nparameter,metric\n1,0.9\n\n,\n2,inf\n")
    with pytest.raises(DataError, match="row 6, column 'acc': 'inf'"):
        import_file(sheet, "gaps")


@pytest.mark.parametrize("name", ["C (inverse)", "../owner", "/abs", "a//b", "x" * 251])
def test_names_the_kit_refuses_mlflow_refuses_too(name):
    """The kit's name rule is MLflow's: what it refuses up front, MLflow would refuse
    half-way through an import."""
    from mlflow.entities import Param
    from mlflow.exceptions import MlflowException

    from logistic_regression.importer import check_name

    with pytest.raises(DataError):
        check_name(Path("sheet.csv"), 1, name)
    client = MlflowClient()
    run = client.create_run(client.create_experiment("names"))
    with pytest.raises(MlflowException):
        client.log_batch(run.info.run_id, params=[Param(name, "1")])


def test_credentials_in_cells_are_stored_redacted(tmp_path):
    canary = "IMPORTCANARY" + "9f2e"
    sheet = [
        ["data", "dashboard", "C", "accuracy"],
        ["parameter", "tag", "parameter", "metric"],
        [f"s3://AKIDEXAMPLE:{canary}@bucket/x.csv", f"https://dash.example/r?token={canary}",
         "0.5", "0.9"],
    ]  # fmt: skip
    path = tmp_path / "past.csv"
    write(path, sheet)
    assert import_file(path, "imported-secrets") == (1, 0)
    (run,) = runs("imported-secrets")
    recorded = str(run.data.params) + str(run.data.tags)
    assert canary not in recorded
    assert run.data.params["data"] == "s3://***@bucket/x.csv"
    assert run.data.tags["dashboard"] == "https://dash.example/r?token=***"
    assert run.data.params["C"] == "0.5"
    # The digest is of the file's own content: importing it again adds nothing.
    assert import_file(path, "imported-secrets") == (0, 1)


def test_a_row_cut_short_is_ended_and_imported_again(tmp_path, monkeypatch):
    """A stop in the middle of a row (here, deterministically, while its values are
    written; tests/e2e/test_import_signals.py sends a real SIGTERM): that row's run is
    ended KILLED, not left RUNNING, and the next import imports it."""
    path = tmp_path / "past.csv"
    write(path, SHEET)
    real = MlflowClient.log_batch
    calls = []

    def stopped_on_the_second_row(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", stopped_on_the_second_row)
    with pytest.raises(KeyboardInterrupt):
        import_file(path, "cut")
    monkeypatch.setattr(MlflowClient, "log_batch", real)
    assert sorted(run.info.status for run in runs("cut")) == ["FINISHED", "KILLED"]
    assert import_file(path, "cut") == (2, 1)
    finished = [run for run in runs("cut") if run.info.status == "FINISHED"]
    assert len({run.data.tags["kit.import.digest"] for run in finished}) == 3 == len(finished)
