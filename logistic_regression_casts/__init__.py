"""The casts inside a logged model: its first step, before the imputers, makes the rows
users send (in whatever dtypes pandas read them in, from a CSV, a Parquet file or a JSON
request) mean what they meant in training. See logistic_regression/columns.py.

A package of its own, importing nothing but pandas and numpy: each model stores a copy
(its `code/` folder, tracking/models.py), and loads it where the kit is not installed,
or is installed in another version (the kit's MLflow plugins import `logistic_regression`
whenever MLflow is imported, so a copy under that name would never be the one used).
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
    categorical, and categories that are all numbers, stay numbers. A missing cell is
    missing however it arrives (None, NaN, pd.NA; alone in its column or beside text), so
    the imputer fills it and a row's answer never depends on the other rows sent."""
    if not isinstance(X, pd.DataFrame):
        return X
    return X.apply(_text_column)


def _text_column(column: pd.Series) -> pd.Series:
    """The column as it is when it holds text only or numbers only (checked in C: what
    nearly every table has; a `category` column as its values), else each present value
    as its text."""
    if column.isna().all():  # nothing but missing cells (a JSON null alone, a blank CSV
        # column read as float64 NaN): missing, as they are beside text
        return pd.Series(np.nan, index=column.index, name=column.name, dtype=object)
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column
    if isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(object)
    kind = pd.api.types.infer_dtype(column, skipna=True)
    if kind == "string":
        if isinstance(column.dtype, pd.StringDtype) and column.dtype.na_value is pd.NA:
            return column.astype(object).where(column.notna(), np.nan)  # pd.NA: NaN
        return column
    if kind in NUMBERS:  # as a CSV of the same cells reads them
        return pd.to_numeric(column)
    missing = column.isna().to_numpy()
    values = np.array([str(v) for v in column.to_numpy(dtype=object)], dtype=object)
    values[missing] = np.nan
    return pd.Series(values, index=column.index, name=column.name, dtype=object)


NUMBERS = ("integer", "floating", "mixed-integer-float", "decimal")
