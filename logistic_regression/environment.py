"""The process environment, where the kit must use it as a channel: the one module that
writes `os.environ` (tests/test_lint.py keeps it so).

Each variable below is written because what reads it offers no other public way in:

- `LOGREG_PARENT_RUN_ID`: a sweep's parent run, for its configurations. Hydra's
  launchers start a configuration in this process, in joblib's worker processes or on a
  Ray node; the environment is the one thing all of them pass on (Ray's workers get it
  as a task argument, `ray_launcher.forwarded_environment`).
- `HYDRA_FULL_ERROR`: Hydra's command line (`hydra.main`) reads it to raise its errors
  instead of printing them with their usage text; the kit turns them into one line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

PARENT_VARIABLE = "LOGREG_PARENT_RUN_ID"
HYDRA_FULL_ERROR = "HYDRA_FULL_ERROR"


def parent_run_id() -> str | None:
    """The parent run of the sweep this process is a configuration of, if any."""
    return os.environ.get(PARENT_VARIABLE) or None


def announce_parent(run_id: str) -> None:
    """From now on, configurations started by this process record under `run_id`."""
    os.environ[PARENT_VARIABLE] = run_id


def take_parent() -> str:
    """The sweep's parent run id, which configurations started later no longer see."""
    return os.environ.pop(PARENT_VARIABLE, "")


@contextmanager
def variables(values: dict[str, str]) -> Iterator[None]:
    """`values` set in the environment inside the block, each variable as it was after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def hydra_raises_errors() -> AbstractContextManager[None]:
    """Inside: Hydra's command line raises its errors (HYDRA_FULL_ERROR=1)."""
    return variables({HYDRA_FULL_ERROR: "1"})
