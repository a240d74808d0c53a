"""Build the estimator from typed config: one scikit-learn Pipeline, the one that is logged.

    preprocess   a ColumnTransformer: numeric columns imputed and (by default) standardised,
                 categorical columns imputed and one-hot encoded (conf/preprocessing)
    classifier   LogisticRegression: binary, or multinomial for three or more classes

Because the preprocessing is inside the pipeline, the logged model takes the raw rows,
missing cells and categories never seen in training included.

scikit-learn 1.8 deprecated `penalty`; the kit keeps `penalty` as the user-facing choice
(it is what papers and habits speak of) and maps it onto `l1_ratio` and `C` here.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from logistic_regression.config import ModelConfig, PreprocessingConfig
from logistic_regression_casts import as_numbers, as_text


def penalty_arguments(model: ModelConfig) -> dict[str, float]:
    """`C` and `l1_ratio` for scikit-learn that give the configured penalty."""
    if model.penalty == "none":
        return {"C": math.inf, "l1_ratio": 0.0}
    l1_ratio = {"l1": 1.0, "l2": 0.0}.get(model.penalty, model.l1_ratio)
    return {"C": model.C, "l1_ratio": l1_ratio}


def column_choice(prep: PreprocessingConfig, features: pd.DataFrame) -> tuple[list, list]:
    """Which columns are numeric and which categorical: the listed ones, the rest by type
    (numbers numeric, anything else categorical), as explicit lists of the table's columns
    (so the logged model holds plain data)."""
    listed = {*prep.numeric_columns, *prep.categorical_columns}
    typed = set(features.select_dtypes(include="number").columns)
    numeric = [
        c for c in features.columns if c in prep.numeric_columns or (c not in listed and c in typed)
    ]
    categorical = [c for c in features.columns if c not in numeric]
    return numeric, categorical


def preprocessor(prep: PreprocessingConfig, features: pd.DataFrame | None) -> ColumnTransformer:
    # First, each column as training saw it: the logged model takes ints, nullable ints,
    # booleans and mixed text as pandas reads them (logistic_regression_casts).
    numeric_steps: list[tuple[str, object]] = [
        ("cast", FunctionTransformer(as_numbers, feature_names_out="one-to-one")),
        (
            "impute",
            SimpleImputer(strategy=prep.numeric_impute, fill_value=prep.numeric_fill_value),
        ),
    ]
    if prep.scale:
        numeric_steps.append(("scale", StandardScaler()))
    categorical_steps = [
        ("cast", FunctionTransformer(as_text, feature_names_out="one-to-one")),
        (
            "impute",
            SimpleImputer(strategy=prep.categorical_impute, fill_value=prep.categorical_fill_value),
        ),
        (
            "onehot",
            OneHotEncoder(
                handle_unknown=prep.handle_unknown,
                min_frequency=prep.min_frequency if prep.min_frequency > 1 else None,
                max_categories=prep.max_categories or None,
                # sparse: 0.76x the time and 0.40x the memory of dense on a wide table
                # (bench/wide_columns.py); the ColumnTransformer still hands the classifier
                # a dense array when most of its columns are not one-hot (density > 0.3)
                sparse_output=True,
            ),
        ),
    ]
    if features is None:  # an all-numeric array or table: every column is numeric
        parts: list[tuple[str, Pipeline, object]] = [
            ("numeric", Pipeline(numeric_steps), slice(0, None))
        ]
    else:
        numeric, categorical = column_choice(prep, features)
        parts = [
            ("numeric", Pipeline(numeric_steps), numeric),
            ("categorical", Pipeline(categorical_steps), categorical),
        ]
    # Arrays between the steps (scikit-learn's default): a pandas table there cost 0.3 s
    # a fit on 160,000 rows and changed no value (tests/breast_cancer_metrics.json).
    return ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)


def build(
    model: ModelConfig,
    seed: int,
    prep: PreprocessingConfig | None = None,
    features: pd.DataFrame | None = None,
) -> Pipeline:
    """The pipeline for `features` (the raw feature table: it fixes which columns are
    numeric and which categorical); without it every column is taken as numeric."""
    classifier = LogisticRegression(
        **penalty_arguments(model),
        solver=model.solver,
        max_iter=model.max_iter,
        class_weight=None if model.class_weight == "none" else model.class_weight,
        random_state=seed,
    )
    return Pipeline(
        [
            ("preprocess", preprocessor(prep or PreprocessingConfig(), features)),
            ("classifier", classifier),
        ]
    )


def encoded_names(pipeline: Pipeline) -> list[str]:
    """The names of the columns the classifier sees (`colour_red`, `colour_infrequent_sklearn`)."""
    return [str(name) for name in pipeline.named_steps["preprocess"].get_feature_names_out()]


def coefficients(pipeline: Pipeline) -> list[tuple[str, float]]:
    """Coefficients on the encoded features, largest magnitude first. A multiclass model
    has one per class and feature, named `feature [class]`."""
    classifier = pipeline.named_steps["classifier"]
    names = encoded_names(pipeline)
    coef = np.asarray(classifier.coef_)
    if coef.shape[0] == 1:
        pairs = [(name, float(value)) for name, value in zip(names, coef[0], strict=True)]
    else:
        pairs = [
            (f"{name} [{label}]", float(value))
            for label, row in zip(classifier.classes_, coef, strict=True)
            for name, value in zip(names, row, strict=True)
        ]
    return sorted(pairs, key=lambda pair: abs(pair[1]), reverse=True)


def intercepts(pipeline: Pipeline) -> list[tuple[str, float]]:
    """The intercept(s), named as the report shows them: one for a binary model (the
    log-odds of the positive class at all-zero encoded features), one per class else."""
    classifier = pipeline.named_steps["classifier"]
    values = np.atleast_1d(classifier.intercept_)
    if len(values) == 1:
        return [("", float(values[0]))]
    return [(str(label), float(v)) for label, v in zip(classifier.classes_, values, strict=True)]


def preprocessing_summary(pipeline: Pipeline, features: pd.DataFrame) -> dict:
    """What the fitted preprocessing did, for the report: rows and columns in, columns
    out, missing cells per column (imputed: in the rows the model was fitted on and in
    any row it scores), and per categorical column the categories learnt and how many of
    them were grouped as infrequent."""
    transformer = pipeline.named_steps["preprocess"]
    by_name = {name: (step, columns) for name, step, columns in transformer.transformers_}
    numeric = list(by_name.get("numeric", (None, []))[1])
    categorical = list(by_name.get("categorical", (None, []))[1])
    categories: dict[str, dict[str, int]] = {}
    if categorical:
        encoder = by_name["categorical"][0].named_steps["onehot"]
        grouping = encoder.min_frequency is not None or encoder.max_categories is not None
        infrequent = encoder.infrequent_categories_ if grouping else [None] * len(categorical)
        for column, learnt, rare in zip(categorical, encoder.categories_, infrequent, strict=True):
            categories[column] = {
                "categories": len(learnt),
                "infrequent": 0 if rare is None else len(rare),
            }
    missing = features.isna().sum()
    return {
        "rows": len(features),
        "columns_in": features.shape[1],
        "columns_out": len(encoded_names(pipeline)),
        "numeric": numeric,
        "scaled": numeric != [] and "scale" in by_name["numeric"][0].named_steps,
        "categorical": categorical,
        "imputed": {str(c): int(n) for c, n in missing.items() if n and c in numeric + categorical},
        "categories": categories,
    }
