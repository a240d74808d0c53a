"""One column that alone gives the answer away: said before the run trusts its score.

A column recorded after the outcome (CreditCard's `expenditure`, 0 for every "no"; a
loan's `interest_rate` for its `grade`) lets the model score 0.99 on the table and
nothing on new rows, and such runs rank first in `best` and in the UI. Each feature is
judged alone, on the whole table: a numeric column whose values order the two classes
almost perfectly (ROC AUC of the column by itself, either way round, at least
`SEPARATES`), or a text column with fewer levels than a tenth of the rows whose every
level belongs almost entirely to one class (the majority class of each level right for
at least `SEPARATES` of the rows). The warning says which column and how it was judged;
the run records it in `kit.warnings` (and the report), and `best` marks the run. A
large table is judged on a sample of `SAMPLE_ROWS` rows.
"""

from __future__ import annotations

import pandas as pd
from sklearn.metrics import roc_auc_score

SEPARATES = 0.99
MARK = "alone separates the classes"  # in the warning; `best` looks for it
SAMPLE_ROWS = 20_000
# Columns judged: the check is a sort per numeric column; a very wide table is sampled.
MAX_COLUMNS = 200


def separating_columns(features: pd.DataFrame, target: pd.Series) -> dict[str, str]:
    """The columns that alone separate the classes, each with how it was judged."""
    found: dict[str, str] = {}
    if len(target) > SAMPLE_ROWS:
        target = target.sample(SAMPLE_ROWS, random_state=0)
        features = features.loc[target.index]
    classes = target.unique()
    if len(classes) < 2:
        return found
    for name in list(features.columns)[:MAX_COLUMNS]:
        column = features[name]
        present = column.notna().to_numpy()
        if present.sum() < 10:
            continue
        values, labels = column[present], target[present]
        if pd.api.types.is_numeric_dtype(values) and len(classes) == 2:
            if labels.nunique() < 2:
                continue
            positive = labels == classes[0]
            auc = roc_auc_score(positive, values.to_numpy(dtype="float64"))
            score = max(auc, 1 - auc)
            if score >= SEPARATES:
                found[str(name)] = f"its values alone order the classes with ROC AUC {score:.3f}"
        elif not pd.api.types.is_numeric_dtype(values):
            levels = values.astype(str)
            if levels.nunique() > max(2, len(levels) // 10):
                continue
            right = pd.crosstab(levels, labels).max(axis=1).sum() / len(levels)
            if right >= SEPARATES:
                found[str(name)] = (
                    f"each of its {levels.nunique()} values belongs to one class in "
                    f"{right:.1%} of the rows"
                )
    return found


def leak_warnings(features: pd.DataFrame, target: pd.Series) -> list[str]:
    """The run's warning lines for `separating_columns`."""
    return [
        f"feature column {name!r} {MARK} almost perfectly ({how}): "
        "if it is known only after the outcome, it leaks it, and the scores will not hold "
        "for new rows; leave it out with preprocessing.drop_columns"
        for name, how in separating_columns(features, target).items()
    ]
