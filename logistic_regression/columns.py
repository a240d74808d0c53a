"""What each kind of column becomes, in training and in the logged model.

Numbers (ints, floats, nullable `Int64`, `bool`/`boolean`) are numeric features; text,
pandas `category` columns and object columns (mixed numbers and text included) are
categorical; dates (`datetime64`, tz-aware or not) and durations (`timedelta64`) are
dropped with a note: a timestamp one-hot encoded would make a column per row, and as a
number it means nothing to a linear model unless the user says which part matters.

`as_numbers` and `as_text` run inside the logged model (scikit-learn FunctionTransformers,
trusted by name for skops in tracking/models.py): rows arrive in whatever dtypes pandas
read them in, from a CSV, a Parquet file or a JSON request, and must mean the same as in
training. They import nothing but pandas and numpy, so loading a model stays cheap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def as_numbers(X):
    """Every column as float64: whole numbers, nullable integers (`pd.NA` becomes NaN, for
    the imputer), booleans (1 and 0) and numbers held as objects. A table already all
    float64 (what training passes) is returned as it is: its values and memory layout,
    to the last bit of the classifier's sums, stay those of a model without this step."""
    if not isinstance(X, pd.DataFrame):
        return np.asarray(X, dtype="float64")
    if all(dtype == np.float64 for dtype in X.dtypes):
        return X
    return X.apply(lambda column: pd.to_numeric(column).astype("float64"))


def as_text(X):
    """Categorical values as text, missing cells kept missing (NaN, for the imputer): a
    column of mixed numbers and text (`3` and `'3a'`, as Excel gives them) can be sorted
    into categories, the `3` read from a CSV is the category `3` an Excel cell was in
    training, and the saved categories are plain strings. Number columns listed as
    categorical keep their numbers."""
    if not isinstance(X, pd.DataFrame):
        return X
    return X.apply(_text_column)


def _text_column(column: pd.Series) -> pd.Series:
    """The column as it is when it holds numbers only or text only (checked in C: what
    nearly every table has), else each present value as its text."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column
    if not isinstance(column.dtype, pd.CategoricalDtype):
        if pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty"):
            return column
    missing = column.isna().to_numpy()
    values = np.array([str(v) for v in column.to_numpy(dtype=object)], dtype=object)
    values[missing] = np.nan
    return pd.Series(values, index=column.index, name=column.name, dtype=object)


def is_time(column: pd.Series) -> bool:
    """A date, a time of day with a date, a duration or a period: not a feature."""
    dtype = column.dtype
    return (
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype)
    )


def time_columns(X: pd.DataFrame) -> list[str]:
    return [str(name) for name in X.columns if is_time(X[name])]


def time_note(column: str, dtype) -> str:
    """The one-line note a run records for a date or duration column it left out."""
    if pd.api.types.is_timedelta64_dtype(dtype):
        kind, use = "durations", "add it as a column of numbers (seconds, days)"
    else:
        kind, use = "dates", "add the part that matters (year, month, weekday, hour) as a number"
    return (
        f"feature column {column!r} holds {kind} ({dtype}) and was left out of the model; "
        f"to use it, {use} column"
    )
