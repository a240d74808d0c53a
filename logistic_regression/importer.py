"""`python -m logistic_regression import FILE`: past results from a spreadsheet as runs.

The file (CSV or Excel .xlsx) holds one header row with names, a second row with each
column's kind (`parameter`, `metric` or `tag`), then one row per past run. The whole
file is checked before anything is written, so a bad cell imports nothing. Each row is
tagged with a digest of its content: importing the same file again adds no duplicates.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from logistic_regression.errors import DataError, first_line

KINDS = ("parameter", "metric", "tag")
DIGEST_TAG = "kit.import.digest"
SOURCE_TAG = "kit.import.source"
ROW_TAG = "kit.import.row"


@dataclass(frozen=True)
class Row:
    number: int  # as the spreadsheet shows it (header = 1, kinds = 2)
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    digest: str


def read_sheet(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, header=None, dtype=str, keep_default_na=False)
        if suffix in (".xlsx", ".xlsm"):
            return pd.read_excel(path, header=None, dtype=str, keep_default_na=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: could not be read: {first_line(exc)}") from None
    raise DataError(f"{path}: {suffix or 'no suffix'} is not supported; use .csv or .xlsx")


def parse(path: Path) -> list[Row]:
    """Every row checked and typed; the first bad cell raises, naming row and column."""
    sheet = read_sheet(path)
    if len(sheet) < 2:
        raise DataError(f"{path}: needs a header row of names and a second row of kinds")
    names = [str(name).strip() for name in sheet.iloc[0]]
    kinds = [str(kind).strip().lower() for kind in sheet.iloc[1]]
    for column, (name, kind) in enumerate(zip(names, kinds, strict=True), start=1):
        if not name:
            raise DataError(f"{path}: row 1, column {column}: a column needs a name")
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
        values = [str(value).strip() for value in sheet.iloc[index]]
        if not any(values):
            continue
        params, metrics, tags = {}, {}, {}
        for name, kind, value in zip(names, kinds, values, strict=True):
            if value == "":
                continue
            if kind == "metric":
                try:
                    number = float(value)
                except ValueError:
                    raise DataError(
                        f"{path}: row {index + 1}, column {name!r}: {value!r} is not a number "
                        "(metric columns hold numbers)"
                    ) from None
                if math.isnan(number):
                    continue
                metrics[name] = number
            elif kind == "parameter":
                params[name] = value
            else:
                tags[name] = value
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

    rows = parse(path)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(experiment_name)
    experiment_id = (
        client.create_experiment(experiment_name)
        if experiment is None
        else experiment.experiment_id
    )
    existing = client.search_runs(
        [experiment_id], filter_string=f"tags.`{DIGEST_TAG}` != ''", max_results=50000
    )
    seen = {run.data.tags.get(DIGEST_TAG) for run in existing}
    now = int(time.time() * 1000)
    imported = 0
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
        run = client.create_run(experiment_id, run_name=name, start_time=now)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, now, 0) for k, v in row.metrics.items()],
            params=[Param(k, v) for k, v in row.params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        client.set_terminated(run.info.run_id, "FINISHED", end_time=now)
        seen.add(row.digest)
        imported += 1
    return imported, len(rows) - imported
