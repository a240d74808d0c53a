"""What a run says about its artifacts: `kit.artifacts` and what `sync` still owes.

States of `kit.artifacts`: `pending` from the moment a run starts logging artifacts
until every upload is verified, then `complete`; while pending, `kit.artifacts_pending`
lists what `sync` still has to upload.
"""

from __future__ import annotations

from mlflow.entities import RunTag
from mlflow.tracking import MlflowClient

from logistic_regression.tracking.models import finalize_model
from logistic_regression.tracking.runs import ERROR_TAG, clip, fail_run

# `pending` from the moment a run starts logging artifacts until every upload is verified,
# then `complete`; `kit.artifacts_pending` lists what `sync` still has to upload.
ARTIFACTS_TAG = "kit.artifacts"


PENDING_TAG = "kit.artifacts_pending"


PENDING_ERROR = "artifacts not stored"


def mark_artifacts(run_id: str, pending: list[str]) -> None:
    """`kit.artifacts` = complete, or pending with the list of what is not stored."""
    client = MlflowClient()
    if not pending:
        client.set_tag(run_id, ARTIFACTS_TAG, "complete")
        if PENDING_TAG in client.get_run(run_id).data.tags:
            client.delete_tag(run_id, PENDING_TAG)
        return
    listing = clip(f"{len(pending)} files: " + ", ".join(pending))
    client.log_batch(run_id, tags=[RunTag(ARTIFACTS_TAG, "pending"), RunTag(PENDING_TAG, listing)])


def record_artifacts_stored(run_id: str, model_ids: list[str]) -> str:
    """After `sync` stored every file: models READY, tags complete, and an honest status.
    A run that failed only because artifacts were pending is FINISHED now; a run still
    RUNNING lost its process (its lock was free) and is KILLED. Returns the status."""
    client = MlflowClient()
    for model_id in model_ids:
        finalize_model(model_id)
    mark_artifacts(run_id, [])
    run = client.get_run(run_id)
    error = run.data.tags.get(ERROR_TAG, "")
    if run.info.status == "RUNNING":
        fail_run(
            run_id,
            "the training process ended without ending the run; sync stored its artifacts",
            "KILLED",
        )
        return "KILLED"
    if run.info.status == "FAILED" and PENDING_ERROR in error:
        client.delete_tag(run_id, ERROR_TAG)
        client.set_terminated(run_id, "FINISHED")
        return "FINISHED"
    return run.info.status
