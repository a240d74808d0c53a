"""The keys of a composed config must be the schema's: Hydra lets `+key=value` add a key
the schema lacks (`+model.c=0.01`, a typo of `model.C`) and `~key` remove one, and
either leaves the run on another value than the user meant, without a word. Both are
refused in one line, the typo with the closest setting's name."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import fields

from omegaconf import DictConfig, OmegaConf

from logistic_regression.errors import ConfigError


def refuse_deletions(overrides: Iterable[str]) -> None:
    """`~key` removes a setting (or a whole section) from the config, and the schema's
    default silently takes its place: refused, in one line."""
    for override in overrides:
        if override.startswith("~"):
            raise ConfigError(
                f"{override}: removing a setting is not allowed (the schema's default would "
                "take its place unseen); set the value you want instead"
            )


def check_keys(node: DictConfig, prefix: str = "") -> None:
    schema = OmegaConf.get_type(node)
    if not isinstance(schema, type) or not hasattr(schema, "__dataclass_fields__"):
        return
    known = [f.name for f in fields(schema)]
    children = {str(key): value for key, value in node.items_ex(resolve=False) if key != "hydra"}
    present = list(children)
    for name, child in children.items():
        if name not in known:
            close = difflib.get_close_matches(name.lower(), [k.lower() for k in known], n=1)
            spelled = next((k for k in known if close and k.lower() == close[0]), None)
            hint = f"; did you mean {prefix}{spelled}?" if spelled else ""
            raise ConfigError(
                f"{prefix}{name} is not a setting{hint} (a `+key=value` override adds a key "
                "the kit would ignore); the settings are in conf/ and the README"
            )
        if isinstance(child, DictConfig):
            check_keys(child, f"{prefix}{name}.")
    for name in known:
        if name not in present:
            raise ConfigError(
                f"{prefix}{name} was removed (~{prefix}{name}); the run needs it: set its "
                "values instead"
            )


def unquoted_text(overrides: Iterable[str]) -> str | None:
    """Hydra's grammar takes a value in letters other than ASCII (`data.target=ラベル`,
    a Japanese column name) only in quotes, and says only `LexerNoViableAltException`:
    the override to write instead, or None when no override is such a value."""
    for override in overrides:
        key, sep, value = override.partition("=")
        if sep and not value.isascii() and value[:1] not in "'\"":
            return (
                f"{override}: a value with characters beyond ASCII must be quoted on the "
                f"command line: \"{key}='{value}'\""
            )
    return None
