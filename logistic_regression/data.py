"""Load the input table and describe it well enough to prove later it is the same data.

Plain functions: a URI in, a `Dataset` out; `s3://` objects are read through `storage/s3.py`.
The digest is what `reproduce` compares: the SHA-256 of the file's (or object's) bytes,
of the table's contents for a built-in dataset.
"""

from __future__ import annotations

import hashlib
import io
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from logistic_regression import columns, leaks, tables
from logistic_regression.errors import DataError, first_line
from logistic_regression.formats import PLAIN_CSV, SUFFIXES, ReadOptions, table_format

# Every classification dataset scikit-learn ships (no download), by its `load_<name>`.
BUILTIN_DATASETS = ("breast_cancer", "iris", "wine", "digits")


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
    warnings: tuple[str, ...] = ()  # what the run records and prints about the data

    @property
    def frame(self) -> pd.DataFrame:
        """Features and target in one table, as logged with `mlflow.log_input`."""
        return self.features.assign(**{str(self.target.name): self.target})


def sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return sha256_handle(handle)


def sha256_handle(handle) -> str:
    """The digest of everything in an open file, read again from its start."""
    handle.seek(0)
    digest = hashlib.sha256()
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


def _read_s3(uri: str, timeout_s: float, options: ReadOptions) -> tuple[pd.DataFrame, DataRef]:
    from logistic_regression.storage import s3

    _, key, _ = s3.parse_uri(uri)
    found = s3.get_object(uri, timeout_s)
    frame = tables.parse(io.BytesIO(found.body), key, options, uri)
    digest = hashlib.sha256(found.body).hexdigest()
    rows, columns = frame.shape
    return frame, DataRef(
        uri, digest, "s3", rows, columns, etag=found.etag, version=found.version_id
    )


def local_path(uri: str) -> Path:
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri).expanduser()


ALLOWED_INPUTS = (
    f"a built-in dataset ({', '.join(BUILTIN_DATASETS)}), a {SUFFIXES} file "
    "or an s3://bucket/key object"
)


def check_input(uri: str) -> None:
    """Refuse an input the kit cannot read, from its name alone (no read, no network):
    a wrong path is one line before the tracking store is even opened."""
    if uri in BUILTIN_DATASETS:
        return
    if uri.startswith("s3://"):
        from logistic_regression.storage import s3

        _, key, _ = s3.parse_uri(uri)
        if table_format(key) is None:
            raise DataError(f"data.input={uri!r} is not supported; use a {SUFFIXES} object")
        return
    if "://" in uri and not uri.startswith("file://"):
        raise DataError(f"data.input={uri!r} is not supported; use {ALLOWED_INPUTS}")
    path = local_path(uri)
    if table_format(path.name) is None:
        raise DataError(f"data.input={uri!r} is not supported; use {ALLOWED_INPUTS}")
    if not path.is_file():
        raise DataError(f"data.input={uri!r}: {what_is_there(path)}; use {ALLOWED_INPUTS}")


def table_name(uri: str) -> str:
    """A short name for the input: a built-in dataset's, else the file's without its
    suffixes (`penguins` for s3://bucket/tables/penguins.csv.gz)."""
    if uri in BUILTIN_DATASETS:
        return uri
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    return name.split(".", 1)[0] or name


def what_is_there(path: Path) -> str:
    """Why `path` is not a file to read, in a few words: missing, or what it is."""
    try:
        kind = path.stat().st_mode
    except FileNotFoundError:
        return "is a link to a missing file" if path.is_symlink() else "no such file"
    except OSError as exc:  # a link that loops: ELOOP
        return f"cannot be followed ({exc.strerror or first_line(exc)})"
    if stat.S_ISDIR(kind):
        return "is a folder, not a file"
    if stat.S_ISFIFO(kind):
        return "is a named pipe, not a file; save what it carries to a file and pass that"
    return "is not a regular file"


def read_table(
    uri: str, timeout_s: float = 60.0, options: ReadOptions = PLAIN_CSV
) -> tuple[pd.DataFrame, DataRef]:
    """Read a built-in dataset or a CSV/Parquet/Excel file into a table and its reference
    (from S3, each read given up after `timeout_s`); text as `options` say."""
    check_input(uri)
    if uri in BUILTIN_DATASETS:
        frame = _load_builtin(uri)
        ref = DataRef(uri, sha256_frame(frame), "builtin", *frame.shape)
        return frame, ref
    if uri.startswith("s3://"):
        return _read_s3(uri, timeout_s, options)
    path = local_path(uri)
    # One open file for the table and its digest: a file replaced meanwhile (a rename
    # over it) cannot make the run record another file's digest than it trained on.
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise DataError(f"data.input={str(path)!r} could not be read: {first_line(exc)}") from exc
    with handle:
        frame = tables.parse(handle, path.name, options, str(path))
        digest = sha256_handle(handle)
    ref = DataRef(str(path.resolve()), digest, "file", *frame.shape)
    return frame, ref


def split_target(
    frame: pd.DataFrame,
    target: str,
    uri: str,
    drop: Sequence[str] = (),
    numeric: Sequence[str] = (),
    categorical: Sequence[str] = (),
) -> tuple[pd.DataFrame, pd.Series]:
    """Separate the label column and check the kit can model the table: at least one row,
    a target of two or more classes (`target_classes`), the columns to `drop` present.
    Numeric features (by type, or listed in `numeric`) become float64: missing cells are
    left for the pipeline's imputer, present values must be finite and small enough to
    standardise (`feature_limit`). Dates and durations are left out (`time_features`).
    Every other column (or one listed in `categorical`) is categorical, kept as it was read."""
    if target not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:12])) + (", ..." if frame.shape[1] > 12 else "")
        spelled = [str(c) for c in frame.columns if str(c).strip().lower() == target.lower()]
        hint = f"; did you mean data.target={spelled[0]!r}?" if spelled else ""
        raise DataError(
            f"data.target={target!r} is not a column of {uri}{hint}; columns are: {shown}"
        )
    if frame.shape[0] == 0:
        raise DataError(f"data.input={uri!r} has no rows (only a header); the kit needs rows")
    frame = frame.rename(columns=str)
    named = {"preprocessing.drop_columns": drop, "preprocessing.numeric_columns": numeric}
    named["preprocessing.categorical_columns"] = categorical
    for key, listed in named.items():
        unknown = [c for c in listed if c not in frame.columns or c == target]
        if unknown:
            raise DataError(f"{key} names {', '.join(unknown)}, not a feature column of {uri}")
    y = frame[target]
    X = frame.drop(columns=[target, *drop])
    if X.shape[1] == 0:
        raise DataError(f"{uri} has no feature columns besides the target {target!r}")
    target_classes(y, target)
    X = X.drop(columns=time_features(X, uri, numeric, categorical))
    chosen = {*numeric, *categorical}  # listed by the user: kept, identifier or not
    X = X.drop(columns=[c for c in columns.identifier_columns(X) if c not in chosen])
    if X.shape[1] == 0:
        raise DataError(
            f"{uri} has no feature columns besides the target {target!r} and columns the kit "
            "leaves out (dates, durations, row numbers or names); list one in "
            "preprocessing.numeric_columns or categorical_columns to keep it"
        )
    text = [c for c in numeric if not _numeric(X[c])]
    if text:
        raise DataError(
            f"preprocessing.numeric_columns lists {', '.join(text)}, which hold text in {uri}"
        )
    numbers = [c for c in X.columns if c not in categorical and _numeric(X[c])]
    # One astype for the whole table: the numbers stay one float64 block, in the memory
    # layout the classifier has always been given (its sums, to the last bit, depend on it).
    X = (
        X.astype("float64")
        if len(numbers) == X.shape[1]
        else X.astype(dict.fromkeys(numbers, "float64"))
    )
    check_finite(X[numbers], uri)
    return X, y


def time_features(
    X: pd.DataFrame, uri: str, numeric: Sequence[str], categorical: Sequence[str]
) -> list[str]:
    """The date and duration columns, which the kit leaves out of the model (columns.py),
    but text dates listed as categorical (their text is a category then). One listed as
    numeric, or a true date listed as categorical, is refused: the kit cannot do it."""
    found = columns.time_columns(X)
    kept = [c for c, kind in found.items() if kind == columns.DATES_AS_TEXT and c in categorical]
    named = [c for c in found if c in {*numeric, *categorical} and c not in kept]
    if named:
        raise DataError(
            f"{', '.join(named)} in {uri} holds dates or durations, which the kit leaves out "
            "of the model; list it in neither preprocessing.numeric_columns nor "
            "categorical_columns, or add its parts as columns of numbers"
        )
    return [c for c in found if c not in kept]


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def target_classes(y: pd.Series, target: str) -> list:
    """The target's labels in sorted order; refuse a target that is not a set of classes:
    missing cells, a single class, mixed kinds of labels, or a continuous number column
    (more than two values, not all whole numbers)."""
    if y.isna().any():
        missing = int(y.isna().sum())
        raise DataError(
            f"data.target={target!r} has {missing} missing "
            f"{'value' if missing == 1 else 'values'} (of {len(y)} rows); a row without a "
            "label cannot be learned from or scored: drop those rows from the file, or fill "
            "them with a class of their own"
        )
    try:
        classes = sorted(y.unique().tolist())
    except TypeError:
        kinds = sorted({type(v).__name__ for v in y.unique().tolist()})
        raise DataError(
            f"data.target={target!r} mixes kinds of labels ({', '.join(kinds)}); "
            "write every label the same way"
        ) from None
    if len(classes) < 2:
        raise DataError(
            f"data.target={target!r} has a single class ({classes[0]!r}); "
            "a classifier needs at least 2"
        )
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    if numeric and len(classes) > 2 and not all(_whole_number(c) for c in classes):
        raise DataError(
            f"data.target={target!r} looks continuous ({len(classes)} distinct numbers, "
            "not all whole); the kit classifies: give a column of class labels"
        )
    return classes


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
    and values so large that scaling them overflows, naming the column, row and value.
    Missing cells are not refused: the pipeline imputes them."""
    limit = feature_limit(len(X))
    values = X.to_numpy(dtype="float64")
    for index, column in enumerate(X.columns):
        cells = values[:, index]
        bad = np.flatnonzero(~(np.abs(cells) <= limit) & ~np.isnan(cells))
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


def load(
    uri: str,
    target: str,
    drop: Sequence[str] = (),
    numeric: Sequence[str] = (),
    categorical: Sequence[str] = (),
    timeout_s: float = 60.0,
    options: ReadOptions = PLAIN_CSV,
) -> Dataset:
    frame, ref = read_table(uri, timeout_s, options)
    features, labels = split_target(frame, target, uri, drop, numeric, categorical)
    # The columns split_target left out that were not asked to be: dates and durations,
    # and identifiers (row numbers, a name per row).
    unused = frame.rename(columns=str).drop(columns=[target, *drop, *features.columns])
    times = columns.time_columns(unused)
    left_out = [columns.time_note(c, kind, unused[c].dtype) for c, kind in times.items()]
    left_out += [
        columns.identifier_note(c, kind)
        for c, kind in columns.identifier_columns(unused.drop(columns=list(times))).items()
    ]
    found = (*left_out, *lookalike_labels(labels, target), *leaks.leak_warnings(features, labels))
    return Dataset(features, labels, ref, found)


def lookalike_labels(y: pd.Series, target: str) -> list[str]:
    """Labels that are different classes but differ only by surrounding spaces or case
    (`yes` and `yes `, `No` and `no`): almost always one class written two ways, which
    makes a binary task multiclass. Said, not changed: the data is the user's."""
    groups: dict[str, list] = {}
    for label in sorted(y.unique().tolist(), key=str):
        groups.setdefault(str(label).strip().casefold(), []).append(label)
    return [
        f"data.target={target!r}: the labels {', '.join(repr(str(v)) for v in same)} differ "
        "only by surrounding spaces or case and count as different classes; clean them if "
        "they mean one"
        for same in groups.values()
        if len(same) > 1
    ]
