"""What a run says about its artifacts: `kit.artifacts` and what `sync` still owes.

States of `kit.artifacts` (set by the run itself, and by `sync` for what it finishes):

- `pending`: files of the run wait to be stored. From the moment the run opens its
  spool folder while it logs and uploads; after its end, when some files could not be
  stored (the store was down, the process was killed): they wait in the spool, listed
  in `kit.artifacts_pending`, and `python -m logistic_regression sync` stores them.
- `complete`: the run logged everything it meant to (report, model, predictions,
  config, environment lock, and the patch of a dirty tree) and every file is stored
  and verified.
- `partial`: the run ended (failed or was killed) after logging some of its files but
  before logging the rest; every file it did log is stored and verified, the others
  were never written. Its model is READY only if all of the model's files were logged.
- `none`: the run ended before logging any file; there is nothing to store.

A run never keeps `pending` once nothing is left to store: its own end, or `sync`,
moves it to one of the three others. `sync` also ends honestly a run whose process is
gone: RUNNING becomes KILLED with the reason in `kit.error`; a run FAILED only because
files were pending becomes FINISHED once they are stored and it was complete.
"""

from __future__ import annotations

from mlflow.entities import RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from logistic_regression.status import Status
from logistic_regression.tracking.models import finalize_model
from logistic_regression.tracking.runs import ERROR_TAG, clip, fail_run

ARTIFACTS_TAG = "kit.artifacts"

PENDING_TAG = "kit.artifacts_pending"

PENDING, COMPLETE, PARTIAL, NONE = "pending", "complete", "partial", "none"
STATES = (PENDING, COMPLETE, PARTIAL, NONE)

PENDING_ERROR = "artifacts not stored"

# How `sync` begins the `kit.error` of a run whose process ended without ending it.
LOST_PROCESS = "the run's process ended without ending the run"


def state_of(pending: int, sealed: bool, logged: int) -> str:
    """The state of a run whose logging is over: `pending` files left; else `complete`
    when its logging was finished (`sealed`), `partial` when it logged some files, `none`."""
    if pending:
        return PENDING
    if sealed:
        return COMPLETE
    return PARTIAL if logged else NONE


def mark_artifacts(run_id: str, pending: list[str], state: str = COMPLETE) -> None:
    """`kit.artifacts` = pending with the list of what is not stored, else `state`."""
    client = MlflowClient()
    if not pending:
        client.set_tag(run_id, ARTIFACTS_TAG, state)
        if PENDING_TAG in client.get_run(run_id).data.tags:
            client.delete_tag(run_id, PENDING_TAG)
        return
    listing = clip(f"{len(pending)} files: " + ", ".join(pending))
    client.log_batch(run_id, tags=[RunTag(ARTIFACTS_TAG, PENDING), RunTag(PENDING_TAG, listing)])


def sync_problem(run_id: str, store: str) -> str:
    """Why `sync` must leave this run's spool folder alone ("" when it may go on): the
    run was deleted from its tracking store, or is not there at all."""
    try:
        run = MlflowClient().get_run(run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return f"the run is not in its tracking store {store}"
        raise
    if run.info.lifecycle_stage == "deleted":
        return (
            f"the run was deleted from {store} (`mlflow runs restore --run-id {run_id}` "
            "brings it back)"
        )
    return ""


def _settled(state: str, pending: int) -> str:
    if state == PENDING:
        return f"{pending} of its files wait in the spool for `python -m logistic_regression sync`"
    return {
        COMPLETE: "sync stored its artifacts",
        PARTIAL: "sync stored the artifacts it had logged; it ended before logging the rest",
        NONE: "it had logged no artifacts",
    }[state]


def record_sync(
    run_id: str,
    model_ids: list[str],
    state: str,
    pending: list[str],
    owner_gone: bool,
    pid: int = 0,
    failure: str = "",
) -> str:
    """Record what `sync` did for a run and end it honestly; returns its status.

    Models READY once stored (each `model_ids` entry had all its files logged); the
    state tag; a run still RUNNING whose process is gone (`owner_gone`: its pid is not
    running and its lock was free) is KILLED with the reason in `kit.error`; a run
    FAILED only because its files were pending is FINISHED once it is `complete`. A run
    whose process stopped because the tracking store failed (`failure`, from its journal)
    and could not be ended then is FAILED with that reason instead (also when something
    ended it FAILED later without one: MLflow's exit handler, once the store was back)."""
    client = MlflowClient()
    if state != PENDING:
        for model_id in model_ids:
            finalize_model(model_id)
    mark_artifacts(run_id, pending, state)
    run = client.get_run(run_id)
    status, error = run.info.status, run.data.tags.get(ERROR_TAG, "")
    reason = f"{LOST_PROCESS} (pid {pid}; killed?); {_settled(state, len(pending))}"
    if status == Status.RUNNING:
        if not owner_gone:
            return status  # its process still runs: it ends the run itself
        if failure:
            fail_run(run_id, f"{failure}; {_settled(state, len(pending))}")
            return Status.FAILED
        fail_run(run_id, reason, Status.KILLED)
        return Status.KILLED
    if status == Status.FAILED and failure and not error:  # ended later, without the reason
        client.set_tag(run_id, ERROR_TAG, clip(f"{failure}; {_settled(state, len(pending))}"))
    elif status == Status.KILLED and error.startswith(LOST_PROCESS):
        client.set_tag(run_id, ERROR_TAG, clip(reason))  # what sync did since
    elif status == Status.FAILED and PENDING_ERROR in error and state == COMPLETE:
        client.delete_tag(run_id, ERROR_TAG)
        client.set_terminated(run_id, Status.FINISHED)
        return Status.FINISHED
    return status
