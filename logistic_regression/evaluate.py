"""Split, cross-validate, fit and score: values in, values out, no MLflow.

Everything random takes the configured seed, so the same config and data give
bit-identical metrics on a rerun (what `reproduce` relies on).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

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
from threadpoolctl import threadpool_limits

from logistic_regression.config import MULTICLASS_METRIC_NAMES, TASK_METRICS, EvaluationConfig
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
    classes: list  # the target's labels, sorted (the columns of test_probability)
    positive_label: object  # binary: the positive class; multiclass: None
    test_probability: np.ndarray  # one column per class
    test_prediction: np.ndarray
    confusion: list[list[int]]  # rows actual, columns predicted, in `classes` order
    roc_curve: tuple[np.ndarray, np.ndarray] | None  # binary only
    pr_curve: tuple[np.ndarray, np.ndarray] | None  # binary only
    warnings: list[str] = field(default_factory=list)

    @property
    def task(self) -> str:
        return task_of(self.classes)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return TASK_METRICS[self.task]

    def cv_mean(self, metric: str) -> float:
        return float(np.mean([fold[metric] for fold in self.folds]))

    def cv_std(self, metric: str) -> float:
        return float(np.std([fold[metric] for fold in self.folds]))


def task_of(classes) -> str:
    return "binary" if len(classes) == 2 else "multiclass"


def positive_label(classes: list, configured: str):
    """The positive class of a binary target: the label written as `configured` (its text,
    case aside for True/False), else the last label in sorted order."""
    if not configured:
        return classes[-1]
    for label in classes:
        if str(label) == configured or (
            isinstance(label, bool | np.bool_) and str(label).lower() == configured.lower()
        ):
            return label
    for label in classes:
        try:
            if float(label) == float(configured):
                return label
        except (TypeError, ValueError):
            continue
    raise DataError(
        f"data.positive_label={configured!r} is not a label of the target; its labels are: "
        + ", ".join(map(str, classes))
    )


def multiclass_scores(
    y_true: pd.Series, probability: np.ndarray, classes: list
) -> dict[str, float]:
    """The multiclass metrics (config.MULTICLASS_METRIC_NAMES) for one set of predictions;
    the predicted label is the most probable class, as scikit-learn's `predict` decides."""
    labels = np.asarray(classes, dtype=object if y_true.dtype == object else None)
    prediction = labels[np.argmax(probability, axis=1)]
    values = {
        "accuracy": accuracy_score(y_true, prediction),
        "roc_auc": roc_auc_score(
            y_true, probability, multi_class="ovr", average="macro", labels=labels
        ),
        "log_loss": log_loss(y_true, probability, labels=labels),
    }
    for average in ("macro", "weighted"):
        kwargs = {"average": average, "labels": labels, "zero_division": 0}
        values[f"f1_{average}"] = f1_score(y_true, prediction, **kwargs)
        values[f"precision_{average}"] = precision_score(y_true, prediction, **kwargs)
        values[f"recall_{average}"] = recall_score(y_true, prediction, **kwargs)
    return {name: float(values[name]) for name in MULTICLASS_METRIC_NAMES}


def scores(y_true: pd.Series, probability: np.ndarray, positive_label) -> dict[str, float]:
    """The six binary metrics (config.METRIC_NAMES), for one set of predictions;
    `probability` is the positive class's.

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
    """Refuse, before a run exists, a split or fold count the data is too small for: every
    class needs a row in the test part and in each cross-validation fold."""
    counts = dataset.target.value_counts()
    smallest = int(counts.min())
    train_smallest = int(np.floor(smallest * (1 - evaluation.test_size)))
    test_smallest = smallest - train_smallest
    if test_smallest < 1 or train_smallest < evaluation.cv_folds:
        which = "smaller" if len(counts) == 2 else "smallest"
        rare = counts.idxmin()
        rare = repr(rare) if isinstance(rare, str) else str(rare)
        rows = "1 row" if smallest == 1 else f"{smallest} rows"
        raise DataError(
            f"evaluation.cv_folds={evaluation.cv_folds} with evaluation.test_size="
            f"{evaluation.test_size} needs more rows: the {which} class "
            f"({rare}) has {rows}, so each fold and the test part cannot all hold a row of "
            f"it; use fewer folds (evaluation.cv_folds=2 at least), add rows of {rare}, or "
            "merge it into another class (or drop its rows) in the file"
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


def evaluate(
    dataset: Dataset,
    estimator: Pipeline,
    evaluation: EvaluationConfig,
    seed: int,
    positive: str = "",
) -> Evaluation:
    """Fit on the training part and score on the test part, then cross-validate on the
    training part: `holdout`, then `cross_validate` (a run does the two itself, and
    starts its outputs between them)."""
    scored = holdout(dataset, estimator, evaluation, seed, positive)
    return cross_validate(scored, estimator, evaluation, seed)


def holdout(
    dataset: Dataset,
    estimator: Pipeline,
    evaluation: EvaluationConfig,
    seed: int,
    positive: str = "",
) -> Evaluation:
    """The stratified split, the final model fitted on the training part (on every core)
    and scored on the test part; no folds yet. `positive`: data.positive_label (binary
    targets). A run writes the model, the predictions and the charts in its background
    worker from this while `cross_validate` fits the folds."""
    parts = split(dataset, evaluation.test_size, seed)
    classes = sorted(dataset.target.unique().tolist())
    pos = positive_label(classes, positive) if task_of(classes) == "binary" else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        final = clone(estimator).fit(parts.X_train, parts.y_train)
        result = _holdout(final, parts, classes, pos)
    return replace(result, warnings=_messages(caught))


def cross_validate(
    scored: Evaluation, estimator: Pipeline, evaluation: EvaluationConfig, seed: int
) -> Evaluation:
    """`scored` (from `holdout`) with the folds: stratified k-fold on its training part,
    each fold a fresh clone of `estimator`, fitted with the numeric libraries
    single-threaded, so that they share the cores with the run's background worker
    instead of fighting over them (multi-threaded BLAS mostly waits on itself when the
    other core is busy). No fold's value depends on how many cores the machine has.
    Fitting the folds in parallel threads was faster still, but held two folds' copies
    of the data at once: 1.65x the plain script's memory on a 200,000-row table."""
    parts, classes, pos = scored.split, scored.classes, scored.positive_label
    kfold = StratifiedKFold(n_splits=evaluation.cv_folds, shuffle=True, random_state=seed)

    def fold(indices: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
        train_index, valid_index = indices
        X, y = parts.X_train.iloc[train_index], parts.y_train.iloc[train_index]
        model = clone(estimator).fit(X, y)
        X_valid, y_valid = parts.X_train.iloc[valid_index], parts.y_train.iloc[valid_index]
        return _score(model, X_valid, y_valid, classes, pos)[0]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with threadpool_limits(limits=1):
            scores_by_fold = [fold(i) for i in kfold.split(parts.X_train, parts.y_train)]
    seen = sorted(set(scored.warnings) | set(_messages(caught)))
    return replace(scored, folds=scores_by_fold, warnings=seen)


def _holdout(final: Pipeline, parts: Split, classes: list, pos) -> Evaluation:
    """The fitted model's test scores, predictions and curves; no folds yet."""
    test, probability = _score(final, parts.X_test, parts.y_test, classes, pos)
    prediction = final.predict(parts.X_test)
    roc = pr = None
    if pos is not None:
        positive_probability = probability[:, classes.index(pos)]
        fpr, tpr, _ = roc_curve(parts.y_test == pos, positive_probability)
        precision, recall, _ = precision_recall_curve(parts.y_test == pos, positive_probability)
        roc, pr = (fpr, tpr), (recall, precision)
    return Evaluation(
        folds=[],
        test=test,
        model=final,
        split=parts,
        classes=classes,
        positive_label=pos,
        test_probability=probability,
        test_prediction=prediction,
        confusion=confusion_matrix(parts.y_test, prediction, labels=classes).tolist(),
        roc_curve=roc,
        pr_curve=pr,
    )


def _score(
    model: Pipeline, X: pd.DataFrame, y: pd.Series, classes: list, pos
) -> tuple[dict[str, float], np.ndarray]:
    """The task's metrics for `model` on (X, y), and its class probabilities."""
    probability = model.predict_proba(X)
    if pos is not None:
        return scores(y, probability[:, classes.index(pos)], pos), probability
    return multiclass_scores(y, probability, classes), probability


def _messages(caught: list[warnings.WarningMessage]) -> list[str]:
    return sorted({f"{w.category.__name__}: {w.message}" for w in caught})


def predictions_table(result: Evaluation) -> pd.DataFrame:
    """The test rows as given (raw features), their label, the predicted label and one
    `probability_<label>` column per class."""
    table = result.split.X_test.copy()
    table.insert(0, "row", result.split.X_test.index)
    table["label"] = result.split.y_test.to_numpy()
    table["prediction"] = result.test_prediction
    for index, label in enumerate(result.classes):
        table[f"probability_{label}"] = result.test_probability[:, index]
    return table.reset_index(drop=True)
