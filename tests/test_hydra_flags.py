"""The kit's copy of Hydra's command-line parser (logistic_regression/hydra_flags.py)
takes exactly the flags Hydra's own takes, with the same choices: the day a Hydra upgrade
adds or changes one, this fails. (Hydra's parser is private; only this test uses it.)"""

import pytest

from logistic_regression import hydra_flags
from logistic_regression.errors import ConfigError


def shape(parser) -> dict[tuple[str, ...], tuple]:
    return {
        tuple(action.option_strings) or (action.dest,): (
            action.nargs,
            tuple(action.choices or ()),
            action.const,
        )
        for action in parser._actions
    } | {("version",): tuple(a.version for a in parser._actions if a.dest == "version")}


def test_the_flags_are_hydras_own():
    from hydra._internal.utils import get_args_parser

    assert shape(hydra_flags.parser()) == shape(get_args_parser())


def test_a_bad_flag_is_one_line_naming_the_help():
    with pytest.raises(ConfigError, match=r"unrecognized arguments: --nope \(see .* --help\)"):
        hydra_flags.parse(["-m", "--nope"])
    parsed = hydra_flags.parse(["-m", "model.C=0.1,1", "--info"])
    assert parsed.multirun and parsed.overrides == ["model.C=0.1,1"] and parsed.info == "all"
