"""Write what the run exports (the test predictions) under a per-run location.

A local folder gets `<output>/<run_id>/predictions.csv` at once; an `s3://bucket/prefix/`
output gets `s3://bucket/prefix/<run_id>/predictions.csv` through the asynchronous
writer, so it is uploaded, verified and, if the store is down, spooled like any artifact.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from logistic_regression.data import local_path
from logistic_regression.errors import DataError, first_line
from logistic_regression.storage import s3
from logistic_regression.storage.beneath import write_beneath
from logistic_regression.storage.writer import ArtifactWriter

PREDICTIONS = "predictions.csv"


def is_s3(output: str) -> bool:
    return output.startswith("s3://")


def check_destination(output: str, timeout_s: float = 60.0) -> None:
    """Refuse, before a run exists, an output the kit cannot write to (an S3 bucket that
    does not answer within `timeout_s` included)."""
    if is_s3(output):
        s3.check_bucket(output, timeout_s)
        return
    if "://" in output and not output.startswith("file://"):
        raise DataError(
            f"data.output={output!r} is not supported; use a local folder or s3://bucket/prefix/"
        )
    path = local_path(output)
    if path.exists() and not path.is_dir():
        raise DataError(f"data.output={output!r} is a file; it must be a folder")
    probe_folder(path, output)


def probe_folder(path: Path, output: str) -> None:
    """Create the output folder (as the run would) and a temporary file in it: a folder
    that cannot be created or written is refused now, not after the run trained."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = exc.strerror or first_line(exc)
        raise DataError(
            f"data.output={output!r} cannot be used: {reason} ({exc.filename or path}); "
            "give a folder you can create and write to"
        ) from None


def predictions_csv(table: pd.DataFrame) -> bytes:
    """The predictions as CSV, formatted once: the same bytes go to the output and to the
    run's artifacts (formatting 40,000 rows of floats costs seconds)."""
    return table.to_csv(index=False).encode("utf-8")


def write_predictions(data: bytes, output: str, run_id: str, writer: ArtifactWriter) -> str:
    """Write the predictions (`predictions_csv`) under a per-run location; return their
    exact URI or path."""
    if is_s3(output):
        root = f"{output.rstrip('/')}/{run_id}"
        writer.put_bytes({PREDICTIONS: data}, root, PREDICTIONS, "outputs")
        return f"{root}/{PREDICTIONS}"
    # Never through a link planted at <output>/<run id>/ or at the file (storage/beneath.py).
    try:
        path = write_beneath(local_path(output), f"{run_id}/{PREDICTIONS}", data)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DataError(f"data.output={output!r}: predictions not written: {reason}") from None
    return str(path.resolve())
