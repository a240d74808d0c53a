"""Hydra's and OmegaConf's errors as the kit's one line: the innermost cause with its key,
and, where their words do not say what to write instead, that: a value of the wrong
type, several values (a sweep) where one was expected, a value Hydra's grammar cannot
read (how to quote it), an unknown key in a file of conf/ (the closest setting)."""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections import defaultdict

# OmegaConf's wording for a value of the wrong type, and what to say instead.
NOT_CONVERTED = re.compile(
    r"Value '(.*)' (?:of type '\w+' could not be converted to (\w+)|is not a valid (bool))"
    r"(?: \(type \w+\))?"
)
TYPE_WORDS = defaultdict(
    lambda: "of the expected type",
    Float="a number (such as 0.5)",
    Integer="a whole number (such as 5)",
    bool="true or false",
)


def one_line(exc: BaseException, schema: type | None = None) -> str:
    """The useful line of a Hydra/OmegaConf error: the innermost cause, with its key, and
    what to write instead where Hydra's own words do not say (`schema`: the config
    dataclass, for the closest setting's name)."""
    inner = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    key = getattr(inner, "full_key", None)
    message = (getattr(inner, "msg", None) or str(inner)).strip().splitlines()
    text = message[0] if message else type(inner).__name__
    outer = str(exc).strip().splitlines()
    if key:
        if converted := NOT_CONVERTED.fullmatch(text):
            value, number, truth = converted.groups()
            return f"invalid value for {key}: {value!r} is not {TYPE_WORDS[number or truth]}"
        return f"invalid value for {key}: {text}"
    if len(outer) > 1 and outer[0].startswith("Error parsing override"):
        return f"{outer[0]}: {outer[1]} (an override is key=value)"
    if schema is not None and len(outer) > 1 and (composing := COMPOSING.match(outer[0])):
        return _in_config_file(composing.group(1), outer[1].strip(), schema)
    line = outer[0] if outer else text
    if line.startswith("Ambiguous value for argument"):
        return (
            f"{line}: several values are a sweep; run them with -m "
            "(python -m logistic_regression.train -m model.C=0.1,1) or mlflow run . -e sweep, "
            "or quote one value holding a comma (key='a,b')"
        )
    if line.startswith(GRAMMAR):
        return f"{line}; {QUOTING}"
    return line


# Hydra's grammar errors, and how to write what it could not read.
GRAMMAR = ("no viable alternative at input", "mismatched input", "extraneous input", "token")
QUOTING = (
    "quote a value that holds / = , : spaces or brackets, as Hydra reads it: "
    "key='a/b', or a list of names: preprocessing.drop_columns=['p/q','x=y'] "
    '(in -P overrides="..." too)'
)
COMPOSING = re.compile(r"In '([^']+)': \w+ raised while composing config:")
MISSING_KEY = re.compile(r"Key '([^']+)' not in '\w+'")


def _in_config_file(name: str, detail: str, schema: type) -> str:
    """A mistake in a file of conf/ (conf/local/default.yaml, say), with its key."""
    where = f"conf/{name}.yaml"
    missing = MISSING_KEY.match(detail)
    if not missing:
        return f"{where}: {detail}"
    key = missing.group(1)
    if key == name.split("/", 1)[0]:  # a group file read under its group's name
        return (
            f"{where}: its settings are read as {key}.<setting> because its first line is not "
            "`# @package _global_`; start the file with that line (see conf/local/README.md)"
        )
    leaf = key.rsplit(".", 1)[-1].lower()
    known = setting_names(schema)
    leaves = {k.rsplit(".", 1)[-1].lower() for k in known}
    near = difflib.get_close_matches(leaf, leaves, n=1)
    close = [k for k in known if near and k.rsplit(".", 1)[-1].lower() == near[0]]
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"{where}: {key} is not a setting there{hint} (the settings are in conf/config.yaml)"


def setting_names(schema: type, prefix: str = "") -> list[str]:
    """Every setting of a config dataclass, as dotted keys (sections by their factory)."""
    names: list[str] = []
    for item in dataclasses.fields(schema):
        section = item.default_factory
        if isinstance(section, type) and dataclasses.is_dataclass(section):
            names += setting_names(section, f"{prefix}{item.name}.")
        else:
            names.append(f"{prefix}{item.name}")
    return names
