"""`python -m logistic_regression sync [--all]`: upload what runs left in the spool.

Runs whose uploads did not finish (the store was down, the process was killed) keep
their files and a journal in the spool. `sync` uploads and verifies each file (the same
`Engine` as the uploader process, here in this process), then records the outcome on
the run through `tracking.artifact_state`: models READY, `kit.artifacts` (`complete`,
`partial` or `none`, see there), a run that failed only for want of its artifacts
FINISHED, and a run left RUNNING by a process that is gone KILLED. A run `mlflow run`
opened and never handed to the kit (it was stopped first) has no folder: `sync` ends it
KILLED too, on a store in this machine's files (`tracking.unlaunched` says when).

The default spool is shared by every checkout of a user, so `sync` handles the folders
of its own tracking store (MLFLOW_TRACKING_URI, else `tracking.uri`, compared as
`spool.store_key` does) and says how many others it left alone; `--all` handles every
folder, each against the store its journal names, except folders naming another
tracking *server*: the login in the environment belongs to this command's store, and
MLflow would send it to any server a journal names, so those are listed and skipped
(name the server with MLFLOW_TRACKING_URI to sync them there).

Each folder is handled on its own. One that cannot be synced (its run was deleted or is
missing, its store is gone, its journal is empty or damaged, anything raised) is
reported in one line on stderr, kept as it is, and skipped; the others go on. A folder
held by another process (a run still writing, a concurrent `sync`) is skipped as busy.
A folder is removed only once it holds nothing unstored. The exit code is 0 when no
folder of the handled stores was left behind, 1 otherwise. Safe to run twice or
concurrently: re-uploading a verified file writes the same bytes.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from logistic_regression import environment
from logistic_regression.config import Config
from logistic_regression.errors import first_line
from logistic_regression.provenance import NOTE
from logistic_regression.storage.spool import (
    LOCK,
    RESULTS,
    Journal,
    append_record,
    process_alive,
    remove_folder,
    repair_tail,
    spool_root,
    store_key,
    unlogged_files,
)
from logistic_regression.storage.uploader import Engine, Settings
from logistic_regression.tracking import artifact_state, runs, store, unlaunched
from logistic_regression.uris import absolute_tracking_uri, redact, store_uri
from logistic_regression.validation import validate_storage


@dataclass(frozen=True)
class SyncOutcome:
    """What `sync` did with one folder. `state`: "stored" (recorded on the run, folder
    removed), "pending" (files still not stored), "busy", "gone" (an empty folder another
    sync had just finished), or "kept" (not synced, or holding files the run never
    logged: `reason` says which)."""

    run_id: str
    state: str
    uploaded: int = 0
    pending: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    reason: str = ""
    artifacts: str = ""  # the kit.artifacts state recorded
    status: str = ""  # the run's status after sync

    @property
    def left_behind(self) -> bool:
        return self.state in ("pending", "kept")


def sync(config: Config, every_store: bool = False) -> int:
    """Sync the spool's folders of this tracking store (of every store with
    `every_store`); 0 when none was left behind, 1 otherwise."""
    storage = config.storage
    validate_storage(storage)
    environment.use_s3_endpoint(storage.endpoint)
    root = spool_root(storage)
    own_uri = store_uri(config.tracking.uri)
    own = store_key(own_uri)
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    stores = {folder: _store_named(folder) for folder in folders}  # each journal read once
    if own in stores.values():
        refuse_locked_store(own_uri, config.tracking.timeout_s)
    left, foreign, handled = 0, 0, 0
    for folder, named in stores.items():
        if named and named != own and not every_store:
            foreign += 1
            continue
        if named and named != own and not _local(named):
            _skip_server(folder, named)
            continue
        handled += 1
        try:
            outcome = sync_folder(folder, storage, own_uri if named == own else "")
        except Exception as exc:  # one folder's trouble never stops the others
            reason = f"{type(exc).__name__}: {first_line(exc)}"
            outcome = SyncOutcome(folder.name, "kept", reason=f"{reason}; kept in {folder}")
        left += outcome.left_behind
        _report(outcome, folder)
    settled = _settle_unlaunched(own_uri, _local(own))
    _record_on_mlflow_run(handled, left, settled)
    if not handled and not settled:
        print(f"nothing to sync in {root}" + (" for this tracking store" if foreign else ""))
    if foreign:
        print(
            f"{foreign} spool folder(s) of other tracking stores left alone in {root} "
            "(`python -m logistic_regression sync --all` syncs them against their own stores)"
        )
    return 1 if left else 0


SYNC_TAG = "kit.sync"


def _record_on_mlflow_run(handled: int, left: int, settled: int) -> None:
    """Under `mlflow run . -e sync`, the run MLflow made for it records what this sync
    did (named `sync`, its result in `kit.sync` and its note) instead of staying an
    empty run with a random name."""
    run_id = runs.run_id_from_mlflow_run()
    if not run_id:
        return
    result = f"{handled} spool folder(s) synced, {left} left behind" + (
        f", {settled} run(s) `mlflow run` never started ended KILLED" if settled else ""
    )
    runs.rename(run_id, "sync")
    runs.log_tags(run_id, {SYNC_TAG: result, NOTE: f"sync of the spool: {result}"})


def _settle_unlaunched(uri: str, local: bool) -> int:
    """End the runs `mlflow run` opened and never handed over (`tracking.unlaunched`);
    how many. They never change the exit code: no file of theirs is owed."""
    try:
        outcome = unlaunched.settle(uri, local)
    except Exception as exc:  # the folders' outcome stands; say what was not looked at
        print(
            f"runs mlflow run left RUNNING were not looked for: {type(exc).__name__}: "
            f"{redact(first_line(exc))}",
            file=sys.stderr,
        )
        return 0
    for run_id in outcome.settled:
        print(f"{run_id}: {unlaunched.REASON}: ended KILLED")
    if outcome.left:
        print(
            f"{len(outcome.left)} run(s) opened by mlflow run and not handed to the kit left "
            f"RUNNING ({outcome.why}): {', '.join(outcome.left)}"
        )
    return len(outcome.settled)


def _local(key: str) -> bool:
    """A store in this machine's files (SQLite, a file store): no login is sent to it."""
    return key.startswith(("sqlite:///", "file:", "/"))


def _skip_server(folder: Path, key: str) -> None:
    """A folder naming another server is not synced with this command's login (MLflow
    sends MLFLOW_TRACKING_USERNAME/PASSWORD to whatever server it is pointed at, and a
    journal can name any): said, and left for a sync that names that server itself."""
    print(
        f"{folder.name}: its tracking store {key} is another server; not synced with this "
        f"login (MLFLOW_TRACKING_URI={key} python -m logistic_regression sync syncs it there)"
    )


def refuse_locked_store(uri: str, timeout_s: float) -> None:
    """A SQLite store another process holds locked is one line within `timeout_s`, as
    for every other command, not one 'database is locked' per folder after a minute."""
    path = store.sqlite_path(absolute_tracking_uri(uri))
    if path is not None and path.exists():
        store.check_sqlite(uri, path, timeout_s)


def _store_named(folder: Path) -> str:
    """The store key of the folder's journal, "" when it names none (or is unreadable)."""
    try:
        journal = Journal.read(folder)
    except OSError:
        return ""
    return store_key(journal.tracking_uri) if journal.run_id else ""


def _report(outcome: SyncOutcome, folder: Path) -> None:
    run = f"run {outcome.run_id}"
    if outcome.state == "busy":
        print(f"{run}: busy (its run or another sync holds it); skipped")
    elif outcome.state == "stored":
        print(f"{run}: {outcome.uploaded} files uploaded and verified")
        print(f"  run {outcome.run_id}: artifacts {outcome.artifacts}, status {outcome.status}")
    elif outcome.state == "pending":
        reason = outcome.errors[0] if outcome.errors else "upload time limit reached"
        ended = f", status {outcome.status}" if outcome.status else ""
        print(
            f"{run}: {len(outcome.pending)} files still pending ({redact(reason)}); "
            f"kept in {folder}{ended}",
            file=sys.stderr,
        )
    elif outcome.state == "kept":
        print(f"{run}: not synced: {redact(outcome.reason)}", file=sys.stderr)


def sync_folder(folder: Path, storage, own_uri: str = "") -> SyncOutcome:
    """Upload what one spool folder still holds, in this process, and record it on its
    run. `own_uri`: the real URI of this command's store when the folder is of it (the
    journal records URIs with passwords hidden); else the journal's store is used. A
    folder another process holds (a run still writing, a concurrent `sync`) is busy."""
    lock = FileLock(str(folder / LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return SyncOutcome(folder.name, "busy")
    try:
        outcome = _sync_locked(folder, storage, own_uri)
    finally:
        lock.release()
    if outcome.state in ("stored", "gone"):
        remove_folder(folder)
    return outcome


def _sync_locked(folder: Path, storage, own_uri: str) -> SyncOutcome:
    journal = Journal.read(folder)
    if not journal.run_id:
        if _empty(folder):
            return SyncOutcome(folder.name, "gone")  # emptied by another sync just now
        return SyncOutcome(
            folder.name,
            "kept",
            reason=f"{folder / 'journal.jsonl'} names no run (empty or damaged); the folder "
            "is kept for you to look at (delete it when you no longer need it)",
        )
    run_id, where = journal.run_id, f"kept in {folder}"
    if journal.damaged:
        return SyncOutcome(
            run_id,
            "kept",
            reason=f"{journal.damaged} line(s) of its journal.jsonl cannot be read, so what "
            f"the run logged is not known for sure; {where}",
        )
    uri = own_uri or journal.tracking_uri
    gone = _store_gone(uri)
    if gone:
        return SyncOutcome(run_id, "kept", reason=f"{gone}; {where}")
    runs.use_uri(uri)
    with runs.bounded_store():  # a store that does not answer is one line, not minutes
        problem = artifact_state.sync_problem(run_id, redact(uri))
    if problem:
        return SyncOutcome(run_id, "kept", reason=f"{problem}; {where}")

    repair_tail(folder / RESULTS)
    settings = Settings.from_storage(storage, uri)
    engine = Engine(folder, settings)
    pending = journal.pending
    for entry in pending:
        engine.submit(entry)
    engine.wait(time.monotonic() + storage.flush_timeout_s)
    engine.close()
    journal = Journal.read(folder)
    left = journal.pending
    owner_gone = not process_alive(journal.pid)
    logged = len(journal.entries)
    state = artifact_state.state_of(len(left), journal.sealed, logged)
    destinations = [e.destination for e in left]
    status = artifact_state.record_sync(
        run_id, journal.models, state, destinations, owner_gone, journal.pid, journal.failure
    )
    errors = tuple(journal.errors_of(left))
    if engine.results_error:
        errors += (engine.results_error,)
    uploaded = len(pending) - len(left)
    if left:
        ended = status if owner_gone else ""
        return SyncOutcome(run_id, "pending", uploaded, tuple(destinations), errors, status=ended)
    append_record(folder / RESULTS, event="recorded", state=state, status=status)
    unlogged = unlogged_files(folder, journal)
    if unlogged:
        return SyncOutcome(
            run_id,
            "kept",
            uploaded,
            reason=f"artifacts {state}, status {status}; {len(unlogged)} file(s) the run wrote "
            f"but never logged (it ended first) are kept in {folder}; delete the folder when "
            "you no longer need them",
            artifacts=state,
            status=status,
        )
    return SyncOutcome(run_id, "stored", uploaded, artifacts=state, status=status)


def _empty(folder: Path) -> bool:
    """Nothing in the folder but its lock and empty logs."""
    return all(
        p.name == LOCK or (p.is_file() and p.stat().st_size == 0)
        for p in folder.rglob("*")
        if not p.is_dir()
    )


def _store_gone(uri: str) -> str:
    """Why the tracking store a journal names cannot be used ("" when it may be): a
    SQLite file that no longer exists (MLflow would make an empty one), or a URI whose
    password the spool does not record."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not Path(uri[len(prefix) :]).is_file():
        return f"its tracking store {uri} does not exist (moved or deleted?)"
    if "://***@" in uri:
        return (
            f"its tracking store {uri} needs a password the spool does not record; run sync "
            "with MLFLOW_TRACKING_URI set to that store"
        )
    return ""
