"""The estimator mapping and the evaluation: metrics, folds, determinism."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from logistic_regression import evaluate, model
from logistic_regression.data import load
from logistic_regression.errors import DataError


@pytest.fixture(scope="module")
def dataset():
    return load("breast_cancer", "target")


@pytest.mark.parametrize(
    ("penalty", "expected"),
    [
        ("l2", {"C": 0.5, "l1_ratio": 0.0}),
        ("l1", {"C": 0.5, "l1_ratio": 1.0}),
        ("elasticnet", {"C": 0.5, "l1_ratio": 0.3}),
        ("none", {"C": math.inf, "l1_ratio": 0.0}),
    ],
)
def test_penalty_maps_onto_scikit_learn_arguments(base_config, penalty, expected):
    cfg = dataclasses.replace(base_config.model, C=0.5, penalty=penalty, l1_ratio=0.3)
    assert model.penalty_arguments(cfg) == expected


def test_l1_with_strong_regularisation_zeroes_coefficients(base_config, dataset):
    cfg = dataclasses.replace(base_config.model, C=0.01, penalty="l1", solver="liblinear")
    fitted = model.build(cfg, seed=0).fit(dataset.features, dataset.target)
    coefficients = model.coefficients(fitted, list(dataset.features.columns))
    assert sum(value == 0.0 for _, value in coefficients) > 20
    assert abs(coefficients[0][1]) >= abs(coefficients[-1][1])


def test_scores_agree_with_scikit_learn():
    y = pd.Series([0, 0, 1, 1, 1, 0])
    probability = np.array([0.1, 0.6, 0.8, 0.4, 0.9, 0.2])
    result = evaluate.scores(y, probability, positive_label=1)
    predicted = (probability > 0.5).astype(int)
    assert result["accuracy"] == accuracy_score(y, predicted)
    assert result["roc_auc"] == roc_auc_score(y, probability)
    assert result["log_loss"] == log_loss(y, probability)
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["recall"] == pytest.approx(2 / 3)


def test_evaluation_has_one_score_set_per_fold_and_test_metrics(base_config, dataset):
    estimator = model.build(base_config.model, base_config.seed)
    cfg = dataclasses.replace(base_config.evaluation, cv_folds=4)
    result = evaluate.evaluate(dataset, estimator, cfg, seed=base_config.seed)
    assert len(result.folds) == 4
    assert set(result.test) == {"accuracy", "roc_auc", "log_loss", "f1", "precision", "recall"}
    assert len(result.split.y_test) == math.ceil(569 * 0.2)
    assert result.test["roc_auc"] > 0.95
    assert sum(map(sum, result.confusion)) == len(result.split.y_test)
    table = evaluate.predictions_table(result)
    assert list(table.columns[-3:]) == ["label", "prediction", "probability"]
    assert len(table) == len(result.split.y_test)


def test_same_config_and_data_give_bit_identical_metrics(base_config, dataset):
    estimator = model.build(base_config.model, base_config.seed)
    first = evaluate.evaluate(dataset, estimator, base_config.evaluation, seed=3)
    second = evaluate.evaluate(dataset, estimator, base_config.evaluation, seed=3)
    other = evaluate.evaluate(dataset, estimator, base_config.evaluation, seed=4)
    assert first.folds == second.folds and first.test == second.test
    assert first.folds != other.folds


def test_too_few_rows_for_the_folds_is_refused_before_training(base_config, tmp_path):
    frame = pd.DataFrame({"x": range(12), "y": [0] * 9 + [1] * 3})
    frame.to_csv(tmp_path / "small.csv", index=False)
    small = load(str(tmp_path / "small.csv"), "y")
    with pytest.raises(DataError, match="evaluation.cv_folds=5"):
        evaluate.check_feasible(small, base_config.evaluation)
