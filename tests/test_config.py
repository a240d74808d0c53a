"""Config composition and validation: every bad value gets one line naming it."""

import dataclasses

import pytest

from logistic_regression.config import SEED_MAX, SOLVER_PENALTIES, Penalty, compose_config
from logistic_regression.errors import ConfigError
from logistic_regression.validation import validate


def test_defaults_compose_into_the_typed_config(base_config):
    assert base_config.model.C == 1.0
    assert base_config.model.penalty == "l2"
    assert base_config.evaluation.cv_folds == 5
    assert base_config.data.input == "breast_cancer"
    assert base_config.tracking.uri == "sqlite:///mlflow.db"
    data = base_config.data
    assert (data.encoding, data.sep, data.decimal, data.sheet) == ("utf-8", ",", ".", "")
    validate(base_config)


def test_how_a_file_is_written_is_set_from_the_command_line():
    """As a user types them: a tab as `'\\t'` (Hydra keeps the backslash), a decimal comma
    quoted (a bare comma would be a sweep), a sheet of a workbook."""
    from logistic_regression.formats import read_options, separator

    cfg = compose_config(
        ["data.sep='\\t'", "data.decimal=','", "data.encoding=cp932", "data.input=t.xlsx"]
        + ["data.sheet='全部'"]
    )
    validate(cfg)
    options = read_options(dataclasses.asdict(cfg.data))
    assert (separator(options.sep), options.decimal) == ("\t", ",")
    assert (options.encoding, options.sheet) == ("cp932", "全部")


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
        ("tracking", {"timeout_s": 0.0}, "tracking.timeout_s=0.0"),
        ("tracking", {"timeout_s": float("nan")}, "tracking.timeout_s=nan"),
        ("tracking", {"timeout_s": float("inf")}, "tracking.timeout_s=inf"),
        ("data", {"encoding": "shift-jiz"}, "data.encoding='shift-jiz' is not allowed"),
        ("data", {"encoding": "rot13"}, "data.encoding='rot13' is not allowed"),
        ("data", {"sep": ";;"}, "data.sep=';;' is not allowed"),
        ("data", {"sep": "a"}, "data.sep='a' is not allowed"),
        ("data", {"decimal": ","}, "data.decimal=',' is not allowed"),  # the separator too
        ("data", {"decimal": ".."}, "data.decimal='..' is not allowed"),
        ("data", {"sheet": "Sheet1"}, "only an .xlsx input has sheets"),
    ],
)
def test_bad_values_are_refused_with_what_is_allowed(base_config, group, changes, expected):
    with pytest.raises(ConfigError) as caught:
        validate(_with(base_config, group, **changes))
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert any(word in message for word in ("allowed", "must", "supports", "choose"))


def _sklearn_solvers() -> set[str]:
    from sklearn.linear_model import LogisticRegression

    (options,) = LogisticRegression._parameter_constraints["solver"]
    return set(options.options)


def test_the_solver_table_covers_every_scikit_learn_solver():
    assert set(SOLVER_PENALTIES) == _sklearn_solvers()


@pytest.mark.parametrize("solver", sorted(_sklearn_solvers()))
def test_the_kit_accepts_exactly_the_pairs_scikit_learn_can_fit(base_config, solver):
    """Fit scikit-learn (through the kit's own mapping of penalty onto C and l1_ratio)
    with every penalty on a tiny dataset: the pairs it fits are the pairs the kit's table
    lists and `validate` accepts; the others it refuses, and so does the kit."""
    import warnings

    from sklearn.datasets import make_classification

    from logistic_regression import model

    features, target = make_classification(n_samples=30, n_features=4, random_state=0)
    fitted, accepted = set(), set()
    for penalty in Penalty:
        cfg = _with(base_config, "model", solver=solver, penalty=penalty, l1_ratio=0.5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence on 30 rows is not the question
            try:
                model.build(cfg.model, seed=0).fit(features, target)
                fitted.add(penalty)
            except ValueError:
                pass
        try:
            validate(cfg)
            accepted.add(penalty)
        except ConfigError:
            pass
    assert fitted, f"scikit-learn fits nothing with {solver}: the dataset is wrong"
    assert fitted == set(SOLVER_PENALTIES[solver]) == accepted


@pytest.mark.parametrize("seed", [-1, SEED_MAX + 1, -(2**40)])
def test_seeds_numpy_cannot_take_are_refused(base_config, seed):
    with pytest.raises(ConfigError) as caught:
        validate(dataclasses.replace(base_config, seed=seed))
    assert str(caught.value) == (
        f"seed={seed} is not allowed; it must be a whole number from 0 to 4294967295"
    )


@pytest.mark.parametrize("seed", [0, SEED_MAX])
def test_the_seed_range_is_the_one_scikit_learn_accepts(base_config, seed):
    """The ends of the kit's range are accepted by the kit and by every place the seed
    goes (the split, the folds, the solver); one past the end is refused by scikit-learn."""
    from sklearn.datasets import make_classification
    from sklearn.model_selection import StratifiedKFold, train_test_split

    from logistic_regression import model

    validate(dataclasses.replace(base_config, seed=seed))
    features, target = make_classification(n_samples=20, random_state=0)
    train_test_split(features, target, random_state=seed, stratify=target)
    list(StratifiedKFold(2, shuffle=True, random_state=seed).split(features, target))
    model.build(base_config.model, seed).fit(features, target)
    beyond = seed - 1 if seed == 0 else seed + 1
    with pytest.raises(ValueError, match="random_state"):
        train_test_split(features, target, random_state=beyond)


def test_settings_from_the_environment_are_resolved_once_when_composed(monkeypatch, tmp_path):
    """The tracking store, the spool and the S3 endpoint come from the environment through
    the composed config alone: MLFLOW_TRACKING_URI wins over `tracking.uri` wherever it was
    set (MLflow's rule, how `mlflow run` hands over its store); `storage.spool_dir` and
    `storage.endpoint` set by the user win over LOGREG_SPOOL_DIR and MLFLOW_S3_ENDPOINT_URL."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///from-env.db")
    monkeypatch.setenv("LOGREG_SPOOL_DIR", str(tmp_path / "env-spool"))
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://127.0.0.1:8333")
    composed = compose_config(["storage=s3", "storage.bucket=b"])
    assert composed.tracking.uri == "sqlite:///from-env.db"
    assert composed.storage.spool_dir == str(tmp_path / "env-spool")
    assert composed.storage.endpoint == "http://127.0.0.1:8333"
    given = compose_config(
        [
            "tracking.uri=sqlite:///given.db",
            "storage=s3",
            f"storage.spool_dir={tmp_path / 'given'}",
            "storage.endpoint=http://127.0.0.1:9000",
        ]
    )
    assert given.tracking.uri == "sqlite:///from-env.db"
    assert given.storage.spool_dir == str(tmp_path / "given")
    assert given.storage.endpoint == "http://127.0.0.1:9000"
    for name in ("MLFLOW_TRACKING_URI", "LOGREG_SPOOL_DIR", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name)
    unset = compose_config(["storage=s3"])
    assert (unset.tracking.uri, unset.storage.spool_dir, unset.storage.endpoint) == (
        "sqlite:///mlflow.db",
        "",
        "",
    )
