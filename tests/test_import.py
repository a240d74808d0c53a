"""Importing past results from spreadsheets (CSV and .xlsx) into a real tracking store."""

from __future__ import annotations

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
    ],
)
def test_a_bad_cell_is_named_and_nothing_is_imported(tmp_path, change, expected, capsys):
    row, column, value = change
    rows = [list(line) for line in SHEET]
    rows[row][column] = value
    sheet = tmp_path / "bad.csv"
    write(sheet, rows)
    with pytest.raises(DataError, match=expected):
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
