"""Turn `mlflow run -P name=value` parameters into Hydra overrides and train.

The MLproject's main entry point declares no parameters, so MLflow passes the ones the
user gave as `--name value` (and records only those). Each known name maps onto its
config key; `overrides` holds extra Hydra overrides in one string; an unknown name is
refused with the list of known names. `name=value` arguments are accepted too (running
this module by hand), and an empty value keeps the default from conf/, the single
source of truth.
"""

from __future__ import annotations

import re
import sys

from logistic_regression import cli
from logistic_regression.errors import ConfigError

# MLproject parameter -> Hydra key. Free-text values are quoted for Hydra's grammar.
PARAMETERS = {
    "C": "model.C",
    "penalty": "model.penalty",
    "solver": "model.solver",
    "l1_ratio": "model.l1_ratio",
    "max_iter": "model.max_iter",
    "class_weight": "model.class_weight",
    "cv_folds": "evaluation.cv_folds",
    "test_size": "evaluation.test_size",
    "seed": "seed",
    "input": "data.input",
    "target": "data.target",
    "positive_label": "data.positive_label",
    "output": "data.output",
    "note": "tracking.note",
    "register": "registry.register",
    "model_name": "registry.model_name",
}
TEXT_PARAMETERS = {"input", "target", "positive_label", "output", "note", "model_name"}


def to_overrides(args: list[str]) -> list[str]:
    """`["--C", "0.5", "--note", "a, b", "--overrides", "x=1 y=2"]` (or `["C=0.5", ...]`)
    -> Hydra overrides."""
    from logistic_regression.config import hydra_quote  # Hydra: under the stop handlers

    overrides: list[str] = []
    extra: list[str] = []
    for name, value in _pairs(args):
        if name == "overrides":
            extra = split_overrides(value)
            continue
        if name not in PARAMETERS:
            raise ConfigError(
                f"unknown parameter {name!r}; known parameters: "
                f"{', '.join([*PARAMETERS, 'overrides'])}"
            )
        if value == "":
            continue
        overrides.append(
            f"{PARAMETERS[name]}={hydra_quote(value) if name in TEXT_PARAMETERS else value}"
        )
    return overrides + extra


# One override: characters other than space and quotes, and quoted stretches (kept).
TOKEN = r"""(?:[^\s'"]|'[^']*'|"[^"]*")+"""
OVERRIDE = re.compile(TOKEN)
LINE = re.compile(rf"\s*(?:{TOKEN}(?:\s+{TOKEN})*)?\s*")  # no unclosed quote anywhere


def split_overrides(value: str) -> list[str]:
    """`-P overrides="a=1 tracking.note='x y' cols=['p/q','x=y']"` -> Hydra overrides, split
    at spaces outside quotes. The quotes stay for Hydra, which reads a quoted value as
    text: a list of names holding `/` or `=` works as Hydra documents it."""
    if not LINE.fullmatch(value):
        raise ConfigError(
            f"overrides={value!r}: a quote is opened and never closed; close it "
            "(e.g. tracking.note='two words')"
        )
    return OVERRIDE.findall(value)


def _pairs(args: list[str]) -> list[tuple[str, str]]:
    """(name, value) from `--name value` (how MLflow passes them) or `name=value`."""
    pairs: list[tuple[str, str]] = []
    position = 0
    while position < len(args):
        arg = args[position]
        if arg.startswith("--"):
            if position + 1 >= len(args):
                raise ConfigError(f"parameter {arg[2:]!r} has no value")
            pairs.append((arg[2:], args[position + 1]))
            position += 2
            continue
        name, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError(f"expected name=value, got {arg!r}")
        pairs.append((name, value))
        position += 1
    return pairs


def main(argv: list[str] | None = None) -> int:
    """Under `mlflow run`, a Ctrl-C may come while the kit is still starting: the stop
    handlers go in first (this module imports almost nothing; MLproject starts Python
    with Ctrl-C ignored until then, so that one landing in Python's own start-up is not a
    fatal error), and the config, Hydra and MLflow are imported under them, so a stop is
    one line and a run ended KILLED rather than a KeyboardInterrupt traceback from the
    middle of an import."""
    args = list(sys.argv[1:] if argv is None else argv)
    return cli.guarded(lambda: _train(args))


def _train(args: list[str]) -> int:
    from logistic_regression import train  # under the stop handlers (see main)

    return train.main(to_overrides(args))


if __name__ == "__main__":
    sys.exit(cli.exit_without_teardown(main))
