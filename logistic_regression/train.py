"""Train one run: `python -m logistic_regression.train [hydra overrides]`
(the same as `python -m logistic_regression train ...`).

Plain overrides are composed with Hydra's compose API (every error one line) and run by
`pipeline.run`; anything with a flag (`--help`, `--cfg job`, `-m` for a sweep) goes to
Hydra's own command line, whose multirun is `sweep.py`'s.
"""

from __future__ import annotations

import logging
import os
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from logistic_regression import cli, notify, pipeline, sweep
from logistic_regression.config import PROJECT_DIR, Config, compose_config
from logistic_regression.errors import KitError, first_line


def execute(config: Config) -> int:
    """Run and print the summary; the webhook hears how the run ended."""
    opened: list[str] = []
    try:
        summary = pipeline.run(config, on_open=opened.append)
    except KitError as exc:
        notify.run_ended(config, opened[-1] if opened else "", "FAILED", str(exc))
        raise
    except Exception as exc:
        reason = f"{type(exc).__name__}: {first_line(exc)}"
        notify.run_ended(config, opened[-1] if opened else "", "FAILED", reason)
        raise
    pipeline.print_summary(summary, os.environ.get("MLFLOW_TRACKING_URI") or config.tracking.uri)
    notify.run_ended(config, summary.run_id, "FINISHED")
    return 0


@hydra.main(config_path=str(PROJECT_DIR / "conf"), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float | None:
    """Hydra's task function: a sweep's configuration, or one run started with a flag."""
    config: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    parent = sweep.parent_run_id()
    if parent:
        return sweep.run_child(config, parent)
    code = cli.guarded(lambda: execute(config))
    if code:
        raise SystemExit(code)  # Hydra drops a task's return value; an exit code it keeps
    return None


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if any(arg.startswith("-") for arg in args):
        return cli.guarded(lambda: sweep.run_hydra(args, hydra_main))
    return cli.guarded(lambda: execute(compose_config(args)))


if __name__ == "__main__":
    sys.exit(main())
