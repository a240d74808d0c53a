"""Build the estimator: a standard scaler and a logistic regression, from typed config.

scikit-learn 1.8 deprecated `penalty`; the kit keeps `penalty` as the user-facing choice
(it is what papers and habits speak of) and maps it onto `l1_ratio` and `C` here.
"""

from __future__ import annotations

import math

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from logistic_regression.config import ModelConfig


def penalty_arguments(model: ModelConfig) -> dict[str, float]:
    """`C` and `l1_ratio` for scikit-learn that give the configured penalty."""
    if model.penalty == "none":
        return {"C": math.inf, "l1_ratio": 0.0}
    l1_ratio = {"l1": 1.0, "l2": 0.0}.get(model.penalty, model.l1_ratio)
    return {"C": model.C, "l1_ratio": l1_ratio}


def build(model: ModelConfig, seed: int) -> Pipeline:
    classifier = LogisticRegression(
        **penalty_arguments(model),
        solver=model.solver,
        max_iter=model.max_iter,
        class_weight=None if model.class_weight == "none" else model.class_weight,
        random_state=seed,
    )
    return Pipeline([("scaler", StandardScaler()), ("classifier", classifier)])


def coefficients(pipeline: Pipeline, feature_names: list[str]) -> list[tuple[str, float]]:
    """Coefficients on the scaled features, largest magnitude first."""
    coef = pipeline.named_steps["classifier"].coef_[0]
    pairs = [(name, float(value)) for name, value in zip(feature_names, coef, strict=True)]
    return sorted(pairs, key=lambda pair: abs(pair[1]), reverse=True)
