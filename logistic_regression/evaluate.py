"""Split, cross-validate, fit and score: values in, values out, no MLflow.

Everything random takes the configured seed, so the same config and data give
bit-identical metrics on a rerun (what `reproduce` relies on).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline

from logistic_regression.config import EvaluationConfig
from logistic_regression.data import Dataset
from logistic_regression.errors import DataError


@dataclass
class Split:
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series


@dataclass
class Evaluation:
    """What one training produced: fold scores, test scores, curves and the fitted model."""

    folds: list[dict[str, float]]
    test: dict[str, float]
    model: Pipeline
    split: Split
    test_probability: np.ndarray
    test_prediction: np.ndarray
    confusion: list[list[int]]
    roc_curve: tuple[np.ndarray, np.ndarray]
    pr_curve: tuple[np.ndarray, np.ndarray]
    warnings: list[str] = field(default_factory=list)

    def cv_mean(self, metric: str) -> float:
        return float(np.mean([fold[metric] for fold in self.folds]))

    def cv_std(self, metric: str) -> float:
        return float(np.std([fold[metric] for fold in self.folds]))


def scores(y_true: pd.Series, probability: np.ndarray, positive_label) -> dict[str, float]:
    """The six metrics the kit records (config.METRIC_NAMES), for one set of predictions.

    The predicted label is the positive one where its probability is above 0.5, as
    scikit-learn's `predict` decides.
    """
    prediction = np.where(probability > 0.5, positive_label, _other(y_true, positive_label))
    binary = {"pos_label": positive_label, "zero_division": 0}
    values = {
        "accuracy": accuracy_score(y_true, prediction),
        "roc_auc": roc_auc_score(y_true == positive_label, probability),
        "log_loss": log_loss(y_true == positive_label, probability, labels=[False, True]),
        "f1": f1_score(y_true, prediction, **binary),
        "precision": precision_score(y_true, prediction, **binary),
        "recall": recall_score(y_true, prediction, **binary),
    }
    return {name: float(value) for name, value in values.items()}


def _other(y: pd.Series, positive_label):
    return next(label for label in np.unique(y.to_numpy()) if label != positive_label)


def check_feasible(dataset: Dataset, evaluation: EvaluationConfig) -> None:
    """Refuse, before a run exists, a split or fold count the data is too small for."""
    counts = dataset.target.value_counts()
    smallest = int(counts.min())
    train_smallest = int(np.floor(smallest * (1 - evaluation.test_size)))
    test_smallest = smallest - train_smallest
    if test_smallest < 1 or train_smallest < evaluation.cv_folds:
        raise DataError(
            f"evaluation.cv_folds={evaluation.cv_folds} with evaluation.test_size="
            f"{evaluation.test_size} needs more rows: the smaller class has {smallest} rows, "
            f"so each fold and the test part cannot all hold a row of it"
        )


def split(dataset: Dataset, test_size: float, seed: int) -> Split:
    X_train, X_test, y_train, y_test = train_test_split(
        dataset.features,
        dataset.target,
        test_size=test_size,
        stratify=dataset.target,
        random_state=seed,
    )
    return Split(X_train, X_test, y_train, y_test)


def evaluate(dataset: Dataset, estimator: Pipeline, evaluation: EvaluationConfig, seed: int):
    """Cross-validate on the training part, fit on all of it, score on the test part."""
    parts = split(dataset, evaluation.test_size, seed)
    positive = np.unique(dataset.target.to_numpy())[1]
    folds: list[dict[str, float]] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kfold = StratifiedKFold(n_splits=evaluation.cv_folds, shuffle=True, random_state=seed)
        for train_index, valid_index in kfold.split(parts.X_train, parts.y_train):
            fold_model = clone(estimator).fit(
                parts.X_train.iloc[train_index], parts.y_train.iloc[train_index]
            )
            probability = _positive_probability(fold_model, parts.X_train.iloc[valid_index])
            folds.append(scores(parts.y_train.iloc[valid_index], probability, positive))
        final = clone(estimator).fit(parts.X_train, parts.y_train)
    probability = _positive_probability(final, parts.X_test)
    prediction = final.predict(parts.X_test)
    fpr, tpr, _ = roc_curve(parts.y_test == positive, probability)
    precision, recall, _ = precision_recall_curve(parts.y_test == positive, probability)
    labels = np.unique(dataset.target.to_numpy())
    return Evaluation(
        folds=folds,
        test=scores(parts.y_test, probability, positive),
        model=final,
        split=parts,
        test_probability=probability,
        test_prediction=prediction,
        confusion=confusion_matrix(parts.y_test, prediction, labels=labels).tolist(),
        roc_curve=(fpr, tpr),
        pr_curve=(recall, precision),
        warnings=sorted({f"{w.category.__name__}: {w.message}" for w in caught}),
    )


def _positive_probability(model: Pipeline, X: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(X)[:, 1]


def predictions_table(result: Evaluation) -> pd.DataFrame:
    """The test rows with their label, predicted label and positive-class probability."""
    table = result.split.X_test.copy()
    table.insert(0, "row", result.split.X_test.index)
    table["label"] = result.split.y_test.to_numpy()
    table["prediction"] = result.test_prediction
    table["probability"] = result.test_probability
    return table.reset_index(drop=True)
