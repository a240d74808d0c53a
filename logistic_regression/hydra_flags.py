"""Hydra's command-line flags (hydra-core 1.3), parsed the way `hydra.main` parses them,
for the checks the kit makes before Hydra starts (`sweep.refuse_early`).

Hydra builds its parser in a private module only (`hydra._internal.utils`), which can
change in any release; this is the same parser from its public flags, and
tests/test_hydra_flags.py fails the day Hydra's own parser takes a flag this one does not.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

import hydra

from logistic_regression.errors import ConfigError

PROG = "python -m logistic_regression.train"
INFO_CHOICES = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see {self.prog} --help)")


def parser() -> argparse.ArgumentParser:
    """Hydra's flags: `overrides`, the modes (--run, --multirun, --cfg, --info,
    --shell-completion), the help flags and where the config comes from."""
    flags = _Parser(prog=PROG, add_help=False, description="Hydra")
    flags.add_argument("--help", "-h", action="store_true")
    flags.add_argument("--hydra-help", action="store_true")
    flags.add_argument("--version", action="version", version=f"Hydra {hydra.__version__}")
    flags.add_argument("overrides", nargs="*")
    flags.add_argument("--cfg", "-c", choices=["job", "hydra", "all"])
    flags.add_argument("--resolve", action="store_true")
    flags.add_argument("--package", "-p")
    flags.add_argument("--run", "-r", action="store_true")
    flags.add_argument("--multirun", "-m", action="store_true")
    flags.add_argument("--shell-completion", "-sc", action="store_true")
    flags.add_argument("--config-path", "-cp")
    flags.add_argument("--config-name", "-cn")
    flags.add_argument("--config-dir", "-cd")
    flags.add_argument("--experimental-rerun")
    flags.add_argument("--info", "-i", const="all", nargs="?", choices=INFO_CHOICES)
    return flags


def parse(args: list[str]) -> argparse.Namespace:
    """The command line as Hydra will read it; a bad flag is one ConfigError line."""
    return parser().parse_args(args)
