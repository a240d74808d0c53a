"""`python -m logistic_regression sync`: upload what runs left in the spool.

Runs whose uploads did not finish (the store was down, the process was killed) keep
their files and a journal in the spool. `sync` uploads and verifies each file (the same
`Engine` as the uploader process, here in this process), then records the outcome on
the run through `tracking.artifact_state`: models READY, `kit.artifacts=complete`, and a run that
failed only for want of its artifacts FINISHED. Safe to run twice or concurrently: a run
folder held by another process is skipped as busy, and re-uploading a verified file
writes the same bytes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from logistic_regression.config import StorageConfig, validate_storage
from logistic_regression.storage import s3
from logistic_regression.storage.spool import LOCK, Journal, remove_folder, spool_root
from logistic_regression.storage.uploader import Engine, Settings
from logistic_regression.tracking import artifact_state, runs


@dataclass(frozen=True)
class SyncOutcome:
    run_id: str
    state: str  # "complete", "pending", "busy"
    uploaded: int
    pending: list[str]
    errors: list[str]


def sync(storage: StorageConfig) -> int:
    """Upload every spooled run; 0 when nothing is left pending, 1 otherwise."""
    validate_storage(storage)
    s3.use_endpoint(storage.endpoint)
    folders = list(spooled_runs(storage))
    if not folders:
        print(f"nothing to sync in {spool_root(storage)}")
        return 0
    override = os.environ.get("MLFLOW_TRACKING_URI")
    left = 0
    for folder in folders:

        def record(journal: Journal) -> None:
            runs.use_uri(override or journal.tracking_uri)
            status = artifact_state.record_artifacts_stored(journal.run_id, journal.models)
            print(f"  run {journal.run_id}: artifacts complete, status {status}")

        outcome = sync_run(folder, storage, record, override)
        if outcome.state == "busy":
            print(f"run {outcome.run_id}: busy (its run or another sync holds it); skipped")
        elif outcome.state == "complete":
            print(f"run {outcome.run_id}: {outcome.uploaded} files uploaded and verified")
        else:
            left += 1
            reason = outcome.errors[0] if outcome.errors else "upload time limit reached"
            print(f"run {outcome.run_id}: {len(outcome.pending)} files still pending ({reason})")
    return 1 if left else 0


def spooled_runs(storage: StorageConfig) -> Iterator[Path]:
    root = spool_root(storage)
    if root.is_dir():
        yield from sorted(p for p in root.iterdir() if p.is_dir())


def sync_run(
    folder: Path,
    storage: StorageConfig,
    on_complete: Callable[[Journal], None],
    tracking_uri: str | None = None,
) -> SyncOutcome:
    """Upload what one spool folder still holds, in this process. A folder another
    process holds (a run still training, or a concurrent `sync`) is skipped as busy: its
    lock says so. `on_complete(journal)` records the outcome once every file is verified."""
    lock = FileLock(str(folder / LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return SyncOutcome(folder.name, "busy", 0, [], [])
    try:
        journal = Journal.read(folder)
        if not journal.run_id:  # nothing recorded, or another sync has just cleaned it up
            return SyncOutcome(folder.name, "complete", 0, [], [])
        settings = Settings.from_storage(storage, tracking_uri or journal.tracking_uri)
        engine = Engine(folder, settings)
        pending = journal.pending
        for entry in pending:
            engine.submit(entry)
        engine.wait(time.monotonic() + storage.flush_timeout_s)
        engine.close()
        journal = Journal.read(folder)
        left = journal.pending
        if not left:
            on_complete(journal)
        state = "pending" if left else "complete"
        outcome = SyncOutcome(
            journal.run_id,
            state,
            len(pending) - len(left),
            [e.destination for e in left],
            journal.errors_of(left),
        )
    finally:
        lock.release()
    if outcome.state == "complete":
        remove_folder(folder)
    return outcome
