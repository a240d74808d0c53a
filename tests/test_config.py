"""Config composition and validation: every bad value gets one line naming it."""

import dataclasses

import pytest

from logistic_regression.config import SOLVER_PENALTIES, compose_config, validate
from logistic_regression.errors import ConfigError


def test_defaults_compose_into_the_typed_config(base_config):
    assert base_config.model.C == 1.0
    assert base_config.model.penalty == "l2"
    assert base_config.evaluation.cv_folds == 5
    assert base_config.data.input == "breast_cancer"
    assert base_config.tracking.uri == "sqlite:///mlflow.db"
    validate(base_config)


def test_overrides_reach_the_typed_config():
    cfg = compose_config(["model.C=0.5", "model.penalty=l1", "model.solver=saga", "seed=7"])
    assert (cfg.model.C, cfg.model.penalty, cfg.model.solver, cfg.seed) == (0.5, "l1", "saga", 7)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("model.C=abc", "model.C"),
        ("evaluation.cv_folds=2.5", "evaluation.cv_folds"),
        ("model.unknown=1", "unknown"),
    ],
)
def test_wrong_types_and_unknown_keys_are_one_line(override, named):
    with pytest.raises(ConfigError) as caught:
        compose_config([override])
    message = str(caught.value)
    assert named in message
    assert "\n" not in message


def _with(cfg, group, **changes):
    return dataclasses.replace(cfg, **{group: dataclasses.replace(getattr(cfg, group), **changes)})


@pytest.mark.parametrize(
    ("group", "changes", "expected"),
    [
        ("model", {"C": 0.0}, "model.C=0.0"),
        ("model", {"C": -1.0}, "model.C=-1.0"),
        ("model", {"penalty": "l3"}, "model.penalty='l3'"),
        ("model", {"solver": "adam"}, "model.solver='adam'"),
        ("model", {"penalty": "l1", "solver": "lbfgs"}, "model.solver='lbfgs' cannot fit"),
        ("model", {"penalty": "elasticnet", "solver": "liblinear"}, "needs one of: saga"),
        ("model", {"l1_ratio": 1.5}, "model.l1_ratio=1.5"),
        ("model", {"max_iter": 0}, "model.max_iter=0"),
        ("model", {"class_weight": "heavy"}, "model.class_weight='heavy'"),
        ("evaluation", {"cv_folds": 1}, "evaluation.cv_folds=1"),
        ("evaluation", {"test_size": 0.0}, "evaluation.test_size=0.0"),
        ("evaluation", {"test_size": 1.0}, "evaluation.test_size=1.0"),
        ("evaluation", {"headline_metric": "mse"}, "evaluation.headline_metric='mse'"),
        ("storage", {"kind": "ftp"}, "storage.kind='ftp'"),
    ],
)
def test_bad_values_are_refused_with_what_is_allowed(base_config, group, changes, expected):
    with pytest.raises(ConfigError) as caught:
        validate(_with(base_config, group, **changes))
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert any(word in message for word in ("allowed", "must", "supports", "choose"))


@pytest.mark.parametrize("solver", sorted(SOLVER_PENALTIES))
def test_every_supported_solver_penalty_pair_validates(base_config, solver):
    for penalty in SOLVER_PENALTIES[solver]:
        validate(_with(base_config, "model", solver=solver, penalty=penalty))
