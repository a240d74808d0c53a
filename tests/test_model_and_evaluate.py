"""The estimator mapping and the evaluation: metrics, folds, determinism."""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import last_json_line
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from logistic_regression import evaluate, model
from logistic_regression.config import MULTICLASS_METRIC_NAMES
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
    coefficients = model.coefficients(fitted)
    assert {name for name, _ in coefficients} == set(dataset.features.columns)
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
    assert list(table.columns[-4:]) == ["label", "prediction", "probability_0", "probability_1"]
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
    with pytest.raises(DataError, match=r"evaluation.cv_folds=5 .*the smaller class \(1\) has 3"):
        evaluate.check_feasible(small, base_config.evaluation)


def test_a_rare_class_of_a_multiclass_target_is_refused_by_name(base_config, tmp_path):
    frame = pd.DataFrame(
        {"x": [i % 7 for i in range(30)], "y": ["a"] * 14 + ["b"] * 13 + ["c"] * 3}
    )
    frame.to_csv(tmp_path / "small.csv", index=False)
    small = load(str(tmp_path / "small.csv"), "y")
    with pytest.raises(DataError, match=r"the smallest class \('c'\) has 3 rows"):
        evaluate.check_feasible(small, base_config.evaluation)


BASELINE = Path(__file__).with_name("breast_cancer_metrics.json")


# OpenBLAS picks its kernels by CPU, and kernels round the last bit of a dot product
# differently: with AVX-512 (SkylakeX) the predicted probabilities, and so every log_loss,
# differ from the recorded ones in the 16th digit, while the Haswell kernels that recorded
# the file (AVX2, which every x86-64 machine here has) give them back bit for bit.
RECORDED_KERNELS = {"OPENBLAS_CORETYPE": "Haswell"}

DEMO_METRICS = """
import json
from logistic_regression import data, evaluate, model
from logistic_regression.config import compose_config
from logistic_regression.pipeline import metric_records

c = compose_config([])
p = c.preprocessing
ds = data.load(
    c.data.input, c.data.target, p.drop_columns, p.numeric_columns, p.categorical_columns
)
result = evaluate.evaluate(ds, model.build(c.model, c.seed, p, ds.features), c.evaluation, c.seed)
print(json.dumps({f"{name}@{step}": value for name, value, step in metric_records(result)}))
"""


def test_the_default_demo_metrics_are_bit_identical_to_before_preprocessing(tmp_path):
    """tests/breast_cancer_metrics.json holds every metric of the default breast_cancer
    run as recorded by the kit before the preprocessing step and multiclass support
    (StandardScaler + LogisticRegression on an all-float64 table). The pipeline as it is
    built for a run must give the very same floats, every bit, on the BLAS kernels that
    recorded them (a fresh interpreter: OpenBLAS reads its core type when it loads)."""
    recorded, stderr = last_json_line(
        tmp_path / "demo.py", DEMO_METRICS, environment=RECORDED_KERNELS
    )
    assert recorded == json.loads(BASELINE.read_text()), stderr


def test_positive_label_is_the_last_label_unless_configured():
    assert evaluate.positive_label([0, 1], "") == 1
    assert evaluate.positive_label(["no", "yes"], "no") == "no"
    assert evaluate.positive_label([False, True], "false") is False
    assert evaluate.positive_label([0.5, 1.5], "0.5") == 0.5
    with pytest.raises(DataError, match="data.positive_label='maybe' is not a label .*no, yes"):
        evaluate.positive_label(["no", "yes"], "maybe")


def test_a_binary_score_follows_the_configured_positive_class(base_config, tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=60), "y": np.tile(["no", "yes", "yes"], 20)})
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = load(str(tmp_path / "t.csv"), "y")
    cfg = dataclasses.replace(base_config.evaluation, cv_folds=3)
    estimator = model.build(base_config.model, 0, base_config.preprocessing, data.features)
    as_yes = evaluate.evaluate(data, estimator, cfg, seed=0)
    as_no = evaluate.evaluate(data, estimator, cfg, seed=0, positive="no")
    assert as_yes.positive_label == "yes" and as_no.positive_label == "no"
    assert as_yes.test["accuracy"] == as_no.test["accuracy"]
    assert as_yes.test["recall"] != as_no.test["recall"]


def test_multiclass_metrics_agree_with_scikit_learn(base_config):
    from sklearn.metrics import f1_score

    data = load("iris", "target")
    cfg = dataclasses.replace(base_config.evaluation, cv_folds=3)
    estimator = model.build(base_config.model, 0, base_config.preprocessing, data.features)
    result = evaluate.evaluate(data, estimator, cfg, seed=0)
    assert result.task == "multiclass" and result.classes == [0, 1, 2]
    assert list(result.test) == list(MULTICLASS_METRIC_NAMES)
    y, probability = result.split.y_test, result.test_probability
    assert result.test["roc_auc"] == roc_auc_score(y, probability, multi_class="ovr")
    assert result.test["log_loss"] == log_loss(y, probability)
    assert result.test["f1_macro"] == f1_score(y, result.test_prediction, average="macro")
    assert len(result.folds) == 3 and result.roc_curve is None
    assert np.array(result.confusion).shape == (3, 3)
    coefficients = model.coefficients(result.model)
    assert len(coefficients) == 3 * 4 and coefficients[0][0].endswith("]")
