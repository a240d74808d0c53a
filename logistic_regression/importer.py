"""`python -m logistic_regression import FILE`: past results from a spreadsheet as runs.

The file (CSV or Excel .xlsx) holds one header row with names, a second row with each
column's kind (`parameter`, `metric` or `tag`), then one row per past run. The whole
file is checked before anything is written, so a bad cell imports nothing: an empty
cell means "not recorded" (that run has no such value); in a metric column anything
else must be a finite number (`nan`, `inf`, text and formula errors such as `#DIV/0!`
are refused, naming the row and column as the spreadsheet shows them). Names and
values are checked against MLflow's limits too. Each row is tagged with a digest of its
content: importing the same file again adds no duplicates. A row an interruption cut
short (a signal, a store error) is ended KILLED, and imported again next time.
Credentials in a cell (a URI's user-info, a secret query parameter) are stored redacted.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import itertools
import math
import posixpath
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from logistic_regression.errors import DataError, first_line
from logistic_regression.status import Status
from logistic_regression.uris import redact

KINDS = ("parameter", "metric", "tag")
DIGEST_TAG = "kit.import.digest"
SOURCE_TAG = "kit.import.source"
ROW_TAG = "kit.import.row"

# MLflow's rules for names and values (MLflow 3.x; tests/test_import.py checks MLflow
# refuses what these refuse): names of letters, digits, `_ - . : /` and spaces, a plain
# relative path, at most 250 characters; param values up to 6000 characters, tags 8000.
NAME = re.compile(r"^[/\w.\- :]*$")
MAX_NAME_LENGTH = 250
MAX_VALUE_LENGTH = {"parameter": 6000, "tag": 8000}


@dataclass(frozen=True)
class Row:
    number: int  # as the spreadsheet shows it (header = 1, kinds = 2)
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    digest: str


def read_sheet(path: Path) -> list[list[str]]:
    """The file's rows as text, one list per row of the file (blank rows included, so a
    row's index + 1 is the number the spreadsheet shows), padded to the same width."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx", ".xlsm"):
        raise DataError(f"{path}: {suffix or 'no suffix'} is not supported; use .csv or .xlsx")
    try:
        rows = _read_csv(path) if suffix == ".csv" else _read_xlsx(path)
    except zipfile.BadZipFile:  # every .xlsx is a zip: this one is something else renamed
        raise DataError(
            f"{path}: could not be read: not an Excel workbook (a .xlsx file is a zip); "
            "a CSV file must be named .csv"
        ) from None
    except (ValueError, OSError, csv.Error, KeyError) as exc:
        raise DataError(f"{path}: could not be read: {first_line(exc)}") from None
    while rows and not any(rows[-1]):
        rows.pop()
    width = max((len(row) for row in rows), default=0)
    return [row + [""] * (width - len(row)) for row in rows]


def _read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = [list(row) for row in csv.reader(handle)]
    for row in rows:
        while row and row[-1] == "":
            row.pop()
    return rows


def _read_xlsx(path: Path) -> list[list[str]]:
    """The first sheet's cells as text: a formula's cached result, a formula error as its
    text (`#DIV/0!`), a whole number without `.0` (as pandas reads them, so digests of
    files imported before stay the same). A formula with no saved result (a file written
    by a program, never opened and saved in a spreadsheet) is refused, not read as empty."""
    from openpyxl import load_workbook
    from openpyxl.cell.cell import TYPE_NUMERIC

    values = load_workbook(path, read_only=True, data_only=True, keep_links=False)
    formulas = load_workbook(path, read_only=True, data_only=False, keep_links=False)
    try:
        sheet, written = values.worksheets[0], formulas.worksheets[0]
        for each in (sheet, written):
            each.reset_dimensions()  # declared dimensions can be wrong; read what is there
        rows = []
        for cells, as_written in zip(
            sheet.iter_rows(min_row=1, min_col=1),
            written.iter_rows(min_row=1, min_col=1),
            strict=False,
        ):
            row = []
            for cell, source in itertools.zip_longest(cells, as_written):
                value = None if cell is None else cell.value
                if value is None and source is not None and str(source.value).startswith("="):
                    raise DataError(
                        f"{path}: cell {source.coordinate} holds a formula with no saved "
                        "result; open and save the file in a spreadsheet program first"
                    )
                if value is None:
                    row.append("")
                elif cell.data_type == TYPE_NUMERIC and math.isfinite(value):
                    row.append(str(int(value)) if int(value) == value else str(float(value)))
                else:
                    row.append(str(value))
            while row and row[-1] == "":
                row.pop()
            rows.append(row)
        return rows
    finally:
        values.close()
        formulas.close()


def check_name(path: Path, column: int, name: str) -> None:
    if not name:
        raise DataError(f"{path}: row 1, column {column}: a column needs a name")
    normal = posixpath.normpath(name)
    plain_path = normal == name and normal != "." and not normal.startswith(("..", "/"))
    if not NAME.match(name) or not plain_path or len(name) > MAX_NAME_LENGTH:
        raise DataError(
            f"{path}: row 1, column {column}: the name {name!r} is not allowed; names hold "
            f"letters, digits, _ - . : / and spaces, as a relative path of at most "
            f"{MAX_NAME_LENGTH} characters (MLflow's rule)"
        )


def metric_value(path: Path, row: int, name: str, value: str) -> float:
    """A metric cell as a number; anything but a finite number is refused."""
    where = f"{path}: row {row}, column {name!r}: {value!r}"
    try:
        number = float(value)
    except ValueError:
        what = "is a formula error" if value.startswith("#") else "is not a number"
        raise DataError(
            f"{where} {what}; metric columns hold finite numbers "
            "(leave the cell empty when the value was not recorded)"
        ) from None
    if not math.isfinite(number):
        raise DataError(
            f"{where} is not a finite number; metric columns hold finite numbers "
            "(leave the cell empty when the value was not recorded)"
        )
    return number


def parse(path: Path) -> list[Row]:
    """Every row checked and typed; the first bad cell raises, naming row and column."""
    sheet = read_sheet(path)
    if len(sheet) < 2:
        raise DataError(f"{path}: needs a header row of names and a second row of kinds")
    names = [str(name).strip() for name in sheet[0]]
    kinds = [str(kind).strip().lower() for kind in sheet[1]]
    for column, (name, kind) in enumerate(zip(names, kinds, strict=True), start=1):
        check_name(path, column, name)
        if kind not in KINDS:
            raise DataError(
                f"{path}: row 2, column {name!r}: kind {kind!r} is not allowed; "
                f"use one of: {', '.join(KINDS)}"
            )
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"{path}: row 1: column names appear twice: {', '.join(twice)}")
    rows = []
    for index in range(2, len(sheet)):
        values = [str(value).strip() for value in sheet[index]]
        if not any(values):
            continue
        params: dict[str, str] = {}
        metrics: dict[str, float] = {}
        tags: dict[str, str] = {}
        for name, kind, value in zip(names, kinds, values, strict=True):
            if value == "":  # not recorded
                continue
            if kind == "metric":
                metrics[name] = metric_value(path, index + 1, name, value)
                continue
            if len(value) > MAX_VALUE_LENGTH[kind]:
                raise DataError(
                    f"{path}: row {index + 1}, column {name!r}: the value has {len(value)} "
                    f"characters; a {kind} holds at most {MAX_VALUE_LENGTH[kind]} (MLflow's limit)"
                )
            # A cell is free text: a credential in it (`s3://KEY:SECRET@...`, `?token=`)
            # is stored hidden, as everything else the kit records.
            (params if kind == "parameter" else tags)[name] = redact(value)
        content = "\x1f".join(
            f"{n}\x1e{k}\x1e{v}" for n, k, v in zip(names, kinds, values, strict=True)
        )
        digest = hashlib.sha256(content.encode()).hexdigest()
        rows.append(Row(index + 1, params, metrics, tags, digest))
    return rows


def import_file(path: Path, experiment_name: str) -> tuple[int, int]:
    """Create one FINISHED run per new row; returns (imported, already there)."""
    import time

    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    from logistic_regression.tracking.experiments import get_or_create_experiment

    rows = parse(path)
    client = MlflowClient()
    experiment_id = get_or_create_experiment(client, experiment_name).experiment_id
    # Only a row whose run was finished counts as imported: one an interruption cut
    # short (ended KILLED below) is imported again.
    done = f"tags.`{DIGEST_TAG}` != '' and attributes.status = '{Status.FINISHED}'"
    existing = client.search_runs([experiment_id], filter_string=done, max_results=50000)
    seen = {run.data.tags.get(DIGEST_TAG) for run in existing}
    now = int(time.time() * 1000)
    imported = 0
    current = ""
    try:
        for row in rows:
            if row.digest in seen:
                continue
            tags = {
                **row.tags,
                DIGEST_TAG: row.digest,
                SOURCE_TAG: path.name,
                ROW_TAG: str(row.number),
            }
            name = row.tags.get("mlflow.runName") or f"{path.stem}-row{row.number}"
            current = client.create_run(experiment_id, run_name=name, start_time=now).info.run_id
            client.log_batch(
                current,
                metrics=[Metric(k, v, now, 0) for k, v in row.metrics.items()],
                params=[Param(k, v) for k, v in row.params.items()],
                tags=[RunTag(k, v) for k, v in tags.items()],
            )
            client.set_terminated(current, Status.FINISHED, end_time=now)
            current = ""
            seen.add(row.digest)
            imported += 1
    except BaseException:  # a signal or a store error mid-row: that row's run is not left RUNNING
        if current:
            with contextlib.suppress(Exception):
                client.set_terminated(current, Status.KILLED)
        raise
    return imported, len(rows) - imported
