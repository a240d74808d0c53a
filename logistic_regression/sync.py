"""`python -m logistic_regression sync`: upload what runs left in the spool.

Runs whose uploads did not finish (the store was down, the process was killed) keep
their files and a journal in the spool. `sync` uploads and verifies each file, then
records the outcome on the run: models READY, `kit.artifacts=complete`, and a run that
failed only for want of its artifacts FINISHED. Safe to run twice or concurrently: a
run folder held by another process is skipped as busy, and re-uploading a verified
file writes the same bytes.
"""

from __future__ import annotations

import os

from logistic_regression import artifacts, s3
from logistic_regression.config import StorageConfig, validate_storage
from logistic_regression.tracking import artifact_state, runs


def sync(storage: StorageConfig) -> int:
    """Upload every spooled run; 0 when nothing is left pending, 1 otherwise."""
    validate_storage(storage)
    s3.use_endpoint(storage.endpoint)
    folders = list(artifacts.spooled_runs(storage))
    if not folders:
        print(f"nothing to sync in {artifacts.spool_root(storage)}")
        return 0
    override = os.environ.get("MLFLOW_TRACKING_URI")
    left = 0
    for folder in folders:

        def record(journal: artifacts.Journal) -> None:
            runs.use_uri(override or journal.tracking_uri)
            status = artifact_state.record_artifacts_stored(journal.run_id, journal.models)
            print(f"  run {journal.run_id}: artifacts complete, status {status}")

        outcome = artifacts.sync_run(folder, storage, record, override)
        if outcome.state == "busy":
            print(f"run {outcome.run_id}: busy (its run or another sync holds it); skipped")
        elif outcome.state == "complete":
            print(f"run {outcome.run_id}: {outcome.uploaded} files uploaded and verified")
        else:
            left += 1
            reason = outcome.errors[0] if outcome.errors else "upload time limit reached"
            print(f"run {outcome.run_id}: {len(outcome.pending)} files still pending ({reason})")
    return 1 if left else 0
