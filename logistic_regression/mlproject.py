"""Turn `mlflow run -P name=value` parameters into Hydra overrides and train.

MLproject passes every parameter as `name=value`; an empty value means "keep the
default from conf/", so conf/ stays the single source of truth. `overrides` holds extra
Hydra overrides in one string. Parameters MLflow does not know arrive as `--name value`;
they are refused with the list of known names.
"""

from __future__ import annotations

import re
import shlex
import sys

from logistic_regression import cli, train
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
    "output": "data.output",
    "note": "tracking.note",
    "register": "registry.register",
    "model_name": "registry.model_name",
}
TEXT_PARAMETERS = {"input", "target", "output", "note", "model_name"}


def hydra_quote(text: str) -> str:
    """Quote free text so Hydra's override grammar keeps it verbatim (commas, colons, ${})."""
    # Hydra reads a backslash literally unless it stands before a quote, `${` or the end.
    doubled = re.sub(r"\\+(?=$|'|\$\{)", lambda run: run.group(0) * 2, text)
    return "'" + doubled.replace("'", "\\'").replace("${", "\\${") + "'"


def to_overrides(args: list[str]) -> list[str]:
    """`["C=0.5", "note=a, b", "overrides=x=1 y=2"]` -> Hydra overrides."""
    overrides: list[str] = []
    extra: list[str] = []
    for arg in args:
        if arg.startswith("--"):
            raise ConfigError(
                f"unknown parameter {arg[2:]!r}; known parameters: "
                f"{', '.join([*PARAMETERS, 'overrides'])}"
            )
        name, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError(f"expected name=value, got {arg!r}")
        if name == "overrides":
            extra = shlex.split(value)
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


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        overrides = to_overrides(args)
    except ConfigError as exc:
        return cli.refuse(exc)
    return train.main(overrides)


if __name__ == "__main__":
    sys.exit(main())
