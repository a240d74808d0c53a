"""MLproject parameters become Hydra overrides; free text survives Hydra's grammar."""

import pytest

from logistic_regression.config import compose_config
from logistic_regression.errors import ConfigError
from logistic_regression.mlproject import PARAMETERS, to_overrides


def test_empty_values_keep_the_conf_defaults():
    args = [f"{name}=" for name in PARAMETERS] + ["overrides="]
    assert to_overrides(args) == []
    assert compose_config(to_overrides(args)) == compose_config([])


def test_parameters_map_onto_config_keys():
    cfg = compose_config(
        to_overrides(
            [
                "C=0.5",
                "penalty=l1",
                "solver=liblinear",
                "cv_folds=3",
                "test_size=0.3",
                "seed=11",
                "max_iter=50",
            ]
        )
    )
    assert cfg.model.C == 0.5 and cfg.model.penalty == "l1" and cfg.model.solver == "liblinear"
    assert cfg.evaluation.cv_folds == 3 and cfg.evaluation.test_size == 0.3
    assert cfg.seed == 11 and cfg.model.max_iter == 50


@pytest.mark.parametrize(
    "note",
    [
        "hello, world",
        "a: b [c] {d}",
        'it\'s "quoted"',
        "${oc.env:HOME}",
        "back\\slash\\",
        "=eq=",
        "tab\tand spaces  ",
        "日本語のメモ",
        "a\\'b",
        "\\${x}",
        "x\\\\",
    ],
)
def test_free_text_round_trips_verbatim(note):
    cfg = compose_config(to_overrides([f"note={note}", "input=data/my file,v2.csv"]))
    assert cfg.tracking.note == note
    assert cfg.data.input == "data/my file,v2.csv"


def test_overrides_parameter_is_split_into_hydra_overrides():
    result = to_overrides(["C=2", "overrides=evaluation.headline_metric=f1 model.max_iter=10"])
    assert result == ["model.C=2", "evaluation.headline_metric=f1", "model.max_iter=10"]


def test_parameters_arrive_as_mlflow_passes_undeclared_ones():
    """`mlflow run . -P C=0.5 -P note="a b"` runs `... --C 0.5 --note 'a b'`."""
    result = to_overrides(["--C", "-0.5", "--note", "a b", "--overrides", "seed=3"])
    assert result == ["model.C=-0.5", "tracking.note='a b'", "seed=3"]
    with pytest.raises(ConfigError, match="parameter 'note' has no value"):
        to_overrides(["--note"])


def test_unknown_parameters_are_refused_with_the_known_names():
    with pytest.raises(ConfigError, match="unknown parameter 'alpha'; known parameters: C, "):
        to_overrides(["--alpha", "3"])
    with pytest.raises(ConfigError, match="unknown parameter 'gamma'"):
        to_overrides(["gamma=1"])


def test_overrides_keep_their_quotes_for_hydra_so_names_with_slashes_work():
    """Column names holding `/` and `=` (real exports have them), as Hydra documents
    quoting them, through `-P overrides`: shlex used to strip the quotes Hydra needs."""
    value = "preprocessing.drop_columns=['p/q','x=y'] tracking.note='two words'"
    overrides = to_overrides([f"overrides={value}"])
    assert overrides == ["preprocessing.drop_columns=['p/q','x=y']", "tracking.note='two words'"]
    config = compose_config(overrides)
    assert config.preprocessing.drop_columns == ["p/q", "x=y"]
    assert config.tracking.note == "two words"


def test_an_unclosed_quote_in_overrides_is_one_line():
    with pytest.raises(ConfigError, match="a quote is opened and never closed"):
        to_overrides(["--overrides", "tracking.note='abc"])
