"""Write what the run exports (the test predictions) under a per-run location."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from logistic_regression.data import local_path
from logistic_regression.errors import DataError


def check_destination(output: str) -> None:
    """Refuse, before a run exists, an output the kit cannot write to."""
    if "://" in output and not output.startswith("file://"):
        raise DataError(f"data.output={output!r} is not supported; use a local folder")
    path = local_path(output)
    if path.exists() and not path.is_dir():
        raise DataError(f"data.output={output!r} is a file; it must be a folder")


def write_predictions(table: pd.DataFrame, output: str, run_id: str) -> str:
    """Write `<output>/<run_id>/predictions.csv` and return its absolute path."""
    folder = local_path(output) / run_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "predictions.csv"
    table.to_csv(path, index=False)
    return str(Path(path).resolve())
