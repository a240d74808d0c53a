"""Train one run: `python -m logistic_regression.train [hydra overrides]`
(the same as `python -m logistic_regression train ...`).

Plain overrides are composed with Hydra's compose API (every error one line) and run by
`pipeline.run`; anything with a flag (`--help`, `--cfg job`, `-m` for a sweep) goes to
Hydra's own command line, whose multirun is `sweep.py`'s.

A mistake in the overrides is refused before MLflow and scikit-learn are imported (the
pipeline, sweep and webhook modules load only once the config composed): a second, not five.

Everything the command prints or logs is redacted (`uris.install`). Hydra prints the
config itself for `--cfg`, `--help` and `--info`: that output is taken before it reaches
the terminal and every secret key (`config.SECRET_KEYS`, e.g. `notify.webhook_url`) set
to a value is shown as `'***'`, so `--cfg job --resolve` never prints the webhook URL.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import warnings
from collections.abc import Callable

import hydra
from omegaconf import DictConfig

from logistic_regression import cli, environment
from logistic_regression.config import PROJECT_DIR, SECRET_KEYS, Config, compose_config, to_object
from logistic_regression.errors import ConfigError
from logistic_regression.uris import SECRET_SETTING, add_secret, hide_secret_settings, install
from logistic_regression.validation import validate

# Hydra flags that print the config (or its help) instead of running.
PRINTING_FLAGS = ("--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help", "--resolve")

# conf/hydra/launcher/ray.yaml (the kit's Ray launcher) has the name of the Ray launcher
# plugin's own config, whose schema Hydra then checks it against, as intended, with a
# deprecation warning on every sweep; the match is on purpose, the warning is not shown.
warnings.filterwarnings(
    "ignore", message=r"\s*'hydra/launcher/ray' is validated against ConfigStore schema"
)


def printing_config(args: list[str]) -> bool:
    return any(arg.split("=", 1)[0] in PRINTING_FLAGS for arg in args)


def register_secrets(args: list[str]) -> None:
    """Before Hydra's own command line prints or logs anything: the secret settings of the
    config these arguments compose (with the sweep's or flags' arguments left out when
    they do not compose) are hidden in every message (`uris.add_secret`)."""
    overrides = [arg for arg in args if "=" in arg and not arg.startswith("-")]
    for override in overrides:  # `+tracking.password=...`: a setting named like a secret
        key, _, value = override.partition("=")
        if re.fullmatch(SECRET_SETTING, key.lstrip("+~").rsplit(".", 1)[-1], re.IGNORECASE):
            for each in value.split(","):  # a sweep over several: each one
                add_secret(each.strip().strip("'\""))
    for attempt in (overrides, []):
        try:
            config = compose_config(attempt)
        except Exception:  # best effort: Hydra itself reports what does not compose
            continue
        for dotted in SECRET_KEYS:
            group, _, key = dotted.partition(".")
            add_secret(str(getattr(getattr(config, group), key) or ""))
        return


def without_secrets(command: Callable[[], int]) -> int:
    """Run `command` with its standard output held back, then print it with the secret
    settings hidden (for Hydra's `--cfg`, `--help` and `--info`, which print the config)."""
    held = io.StringIO()
    try:
        with contextlib.redirect_stdout(held):
            return command()
    finally:
        sys.stdout.write(hide_secret_settings(held.getvalue(), SECRET_KEYS))
        sys.stdout.flush()


def execute(config: Config) -> int:
    """Run (it prints its summary; its lifecycle tells the webhook how it ended)."""
    validate(config)  # a mistake in the values is one line before the heavy imports below
    if config.sweep.resume:
        raise ConfigError(
            f"sweep.resume={config.sweep.resume} resumes a sweep: add -m and the sweep's "
            "overrides (python -m logistic_regression.train -m sweep.resume=<id> model.C=...)"
        )
    from logistic_regression import pipeline

    pipeline.run(config)
    return 0


@hydra.main(config_path=str(PROJECT_DIR / "conf"), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float | None:
    """Hydra's task function: a sweep's configuration, or one run started with a flag."""
    from logistic_regression import sweep

    install()  # also in a launcher's worker process (joblib), which starts here
    config: Config = to_object(cfg)
    parent = environment.parent_run_id()
    if parent:
        return sweep.run_child(config, parent)
    code = cli.guarded(lambda: execute(config))
    if code:
        raise SystemExit(code)  # Hydra drops a task's return value; an exit code it keeps
    return None


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    environment.hold_thread_pools()  # before numpy loads: the worker forks single-threaded
    install()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with environment.private_files():
        return _main(args)


def _main(args: list[str]) -> int:
    if any(arg.startswith("-") for arg in args):
        from logistic_regression import sweep

        register_secrets(args)
        if printing_config(args):
            return without_secrets(lambda: cli.guarded(lambda: sweep.run_hydra(args, hydra_main)))
        return cli.guarded(lambda: sweep.run_hydra(args, hydra_main))
    return cli.guarded(lambda: execute(compose_config(args)))


if __name__ == "__main__":
    sys.exit(cli.exit_without_teardown(main))
