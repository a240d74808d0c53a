"""The kit's one error policy for every command.

A `KitError` is the user's to fix: one line on stderr, exit code 2. Anything else is a
bug in the kit: one line that says so (the traceback with LOGREG_DEBUG=1), exit code 1.
Either way the run `mlflow run` created for this process is never left RUNNING, and
that last call to the tracking store is bounded: the store may be what failed.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from logistic_regression.errors import KitError, first_line
from logistic_regression.uris import redact

DEBUG_VARIABLE = "LOGREG_DEBUG"
log = logging.getLogger("logistic_regression")


def guarded(command: Callable[[], int]) -> int:
    """Run `command` under the error policy; its return value is the exit code."""
    try:
        return command()
    except KitError as exc:
        return refuse(exc)
    except Exception as exc:
        if os.environ.get(DEBUG_VARIABLE):
            raise
        line = redact(first_line(exc))
        print(
            f"error: unexpected {type(exc).__name__}: {line} "
            f"(a bug in the kit; set {DEBUG_VARIABLE}=1 for the traceback)",
            file=sys.stderr,
        )
        fail_pending_mlflow_run(f"{type(exc).__name__}: {line}")
        return 1


def refuse(exc: KitError) -> int:
    """A user error: one line on stderr, the pending `mlflow run` run failed, exit code 2."""
    message = redact(str(exc))
    print(f"error: {message}", file=sys.stderr)
    fail_pending_mlflow_run(message)
    return 2


def fail_pending_mlflow_run(reason: str) -> None:
    """`mlflow run` created a run before starting us; never leave it RUNNING."""
    from logistic_regression.tracking import runs

    run_id = runs.run_id_from_mlflow_run()
    if not run_id:
        return
    try:
        with runs.bounded_store():
            if runs.run_status(run_id) == "RUNNING":
                runs.fail_run(run_id, reason)
    except Exception as exc:  # the store is gone too: say so, do not mask the first error
        log.warning("could not mark run %s FAILED: %s", run_id, redact(first_line(exc)))
