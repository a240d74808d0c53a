"""Load the input table and describe it well enough to prove later it is the same data.

Plain functions: a URI in, a `Dataset` out; `s3://` objects are read through `storage/s3.py`.
The digest is what `reproduce` compares: the SHA-256 of the file's (or object's) bytes,
of the table's contents for a built-in dataset.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from logistic_regression.errors import DataError, first_line

BUILTIN_DATASETS = ("breast_cancer",)
FILE_SUFFIXES = (".csv", ".parquet", ".pq")


@dataclass(frozen=True)
class DataRef:
    """Where the data came from and what it was."""

    uri: str
    digest: str
    kind: str  # "builtin", "file" or "s3"
    rows: int
    columns: int
    etag: str | None = None  # S3 only
    version: str | None = None  # S3 only, when the bucket is versioned


@dataclass(frozen=True)
class Dataset:
    features: pd.DataFrame
    target: pd.Series
    ref: DataRef

    @property
    def frame(self) -> pd.DataFrame:
        """Features and target in one table, as logged with `mlflow.log_input`."""
        return self.features.assign(**{str(self.target.name): self.target})


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_frame(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame, index=True).to_numpy()
    columns = "\x1f".join(map(str, frame.columns)).encode()
    return hashlib.sha256(columns + hashed.tobytes()).hexdigest()


def _load_builtin(name: str) -> pd.DataFrame:
    from sklearn import datasets

    loader = getattr(datasets, f"load_{name}")
    return loader(as_frame=True).frame


def _parse(source, suffix: str, uri: str) -> pd.DataFrame:
    try:
        if suffix == ".csv":
            return pd.read_csv(source)
        return pd.read_parquet(source)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"data.input={uri!r} could not be read: {first_line(exc)}") from exc


def _read_s3(uri: str) -> tuple[pd.DataFrame, DataRef]:
    from logistic_regression.storage import s3

    _, key, _ = s3.parse_uri(uri)
    suffix = Path(key).suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise DataError(f"data.input={uri!r} is not supported; use a .csv or .parquet object")
    found = s3.get_object(uri)
    frame = _parse(io.BytesIO(found.body), suffix, uri)
    digest = hashlib.sha256(found.body).hexdigest()
    rows, columns = frame.shape
    return frame, DataRef(
        uri, digest, "s3", rows, columns, etag=found.etag, version=found.version_id
    )


def local_path(uri: str) -> Path:
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri).expanduser()


def read_table(uri: str) -> tuple[pd.DataFrame, DataRef]:
    """Read a built-in dataset or a CSV/Parquet file into a table and its reference."""
    if uri in BUILTIN_DATASETS:
        frame = _load_builtin(uri)
        ref = DataRef(uri, sha256_frame(frame), "builtin", *frame.shape)
        return frame, ref
    allowed = (
        f"a built-in dataset ({', '.join(BUILTIN_DATASETS)}), a .csv/.parquet file "
        "or an s3://bucket/key object"
    )
    if uri.startswith("s3://"):
        return _read_s3(uri)
    if "://" in uri and not uri.startswith("file://"):
        raise DataError(f"data.input={uri!r} is not supported; use {allowed}")
    path = local_path(uri)
    if path.suffix.lower() not in FILE_SUFFIXES:
        raise DataError(f"data.input={uri!r} is not supported; use {allowed}")
    if not path.is_file():
        raise DataError(f"data.input={uri!r}: no such file; use {allowed}")
    frame = _parse(path, path.suffix.lower(), str(path))
    ref = DataRef(str(path.resolve()), sha256_file(path), "file", *frame.shape)
    return frame, ref


def split_target(frame: pd.DataFrame, target: str, uri: str) -> tuple[pd.DataFrame, pd.Series]:
    """Separate the label column and check the kit can model the table: at least one row,
    a binary target of two whole-number classes, numeric features that are finite and
    small enough to standardise in float64 (`feature_limit`)."""
    if target not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:12])) + (", ..." if frame.shape[1] > 12 else "")
        raise DataError(f"data.target={target!r} is not a column of {uri}; columns are: {shown}")
    if frame.shape[0] == 0:
        raise DataError(f"data.input={uri!r} has no rows (only a header); the kit needs rows")
    y = frame[target]
    X = frame.drop(columns=[target])
    if X.shape[1] == 0:
        raise DataError(f"{uri} has no feature columns besides the target {target!r}")
    if not pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y):
        raise DataError(
            f"data.target={target!r} holds non-numeric values (dtype {y.dtype}); "
            "the kit needs a binary numeric target such as 0/1"
        )
    if y.isna().any():
        raise DataError(f"data.target={target!r} has {int(y.isna().sum())} missing values")
    classes = np.unique(y.to_numpy())
    if len(classes) != 2:
        raise DataError(
            f"data.target={target!r} has {len(classes)} classes; the kit needs exactly 2 (binary)"
        )
    if not all(_whole_number(c) for c in classes):
        raise DataError(
            f"data.target={target!r} holds the classes {classes[0]} and {classes[1]}; "
            "the kit needs two whole-number classes such as 0/1 (0.0/1.0 is fine)"
        )
    non_numeric = [str(c) for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    if non_numeric:
        raise DataError(
            f"feature columns must be numeric; not numeric in {uri}: {', '.join(non_numeric)}"
        )
    missing = [str(c) for c in X.columns if X[c].isna().any()]
    if missing:
        raise DataError(f"feature columns with missing values in {uri}: {', '.join(missing)}")
    X.columns = [str(c) for c in X.columns]
    X = X.astype("float64")
    check_finite(X, uri)
    return X, y.astype("int64") if y.dtype == bool else y


def _whole_number(value) -> bool:
    number = float(value)
    return np.isfinite(number) and number.is_integer()


def feature_limit(rows: int) -> float:
    """The largest feature magnitude the kit accepts for a table of `rows` rows: below it,
    standardising (the sum of squared deviations, each at most (2 * limit)**2) cannot
    overflow float64. About 1e153 for 40 rows, 1e149 for a billion."""
    return float(np.sqrt(np.finfo(np.float64).max / (4 * max(rows, 1))))


def check_finite(X: pd.DataFrame, uri: str) -> None:
    """Refuse infinite feature values (`inf`, or a number beyond float64 such as 1e400)
    and values so large that scaling them overflows, naming the column, row and value."""
    limit = feature_limit(len(X))
    values = X.to_numpy()
    for index, column in enumerate(X.columns):
        bad = np.flatnonzero(~(np.abs(values[:, index]) <= limit))
        if not len(bad):
            continue
        row, value = int(bad[0]), float(values[bad[0], index])
        where = f"feature column {column!r} in {uri} holds {value:g} at data row {row + 1}"
        if not np.isfinite(value):
            raise DataError(f"{where} (header not counted); feature values must be finite")
        raise DataError(
            f"{where} (header not counted); with {len(X)} rows, feature values must lie "
            f"within ±{limit:.3g}, or standardising them overflows float64"
        )


def load(uri: str, target: str) -> Dataset:
    frame, ref = read_table(uri)
    features, labels = split_target(frame, target, uri)
    return Dataset(features=features, target=labels, ref=ref)
