"""One run's life, owned in one place: `open_run` opens the run (or continues the one
`mlflow run` made) and its artifact writer, and ends both honestly whatever happens
inside, for a finished run, a failure, a failed tracking store and every stop signal:

- the status (FINISHED, FAILED, KILLED) and the reason in `kit.error`
  (`tracking.runs.active_run`);
- `kit.artifacts` and the spool folder: kept when it holds anything not stored (always
  on a full disk or a failed store, with the reason in its journal), removed otherwise;
- what the command's one line says is kept where: the exception raised out of the block
  is a new one that carries it (`Interrupted.ended`, `StoreFailed.keeping`); nothing is
  set on an exception on its way up;
- the webhook (`notify`), for a run of its own (a sweep's parent speaks for its children).

Steps inside only record and raise; `cli` maps what comes out to a line and an exit code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from logistic_regression import console, notify, outputs, preflight
from logistic_regression.background import Background
from logistic_regression.errors import Interrupted, KitError, first_line, raise_if_stopped
from logistic_regression.status import Status
from logistic_regression.storage import spool
from logistic_regression.storage.uploader import local_root
from logistic_regression.storage.writer import ArtifactWriter, SpoolFull
from logistic_regression.tracking import artifact_state, models, runs
from logistic_regression.uris import redact, store_uri

log = logging.getLogger("logistic_regression")


@dataclass(frozen=True)
class OpenRun:
    """The run inside the block: its id, where its artifacts go, and its writer."""

    run_id: str
    run_root: str
    writer: ArtifactWriter


@contextmanager
def open_run(
    prepared: preflight.Prepared,
    background: Background,
    parent_run_id: str | None = None,
    on_open: Callable[[str], None] | None = None,
) -> Iterator[OpenRun]:
    """The run for the block, ended honestly however the block ends (module docstring).
    `parent_run_id`: a child of that run (a sweep's configuration; no webhook of its own).
    `on_open(run_id)`: told as soon as the run exists, before anything else can fail."""
    config = prepared.config
    opened = ""
    try:
        with runs.active_run(
            config.tracking,
            prepared.name,
            prepared.tags,
            prepared.artifact_location,
            parent_run_id,
        ) as active:
            opened = active.info.run_id
            if on_open is not None:
                on_open(opened)
            run_root = runs.artifact_uri(opened)
            runs.check_artifact_location(run_root, prepared.artifact_location, f"run {opened}")
            if parent_run_id is None:
                console.warn_other_experiment(config, active.info.experiment_id)
            with writing(prepared, opened, run_root, background) as writer:
                yield OpenRun(opened, run_root, writer)
                raise_if_stopped()  # a stop whose Interrupted was swallowed: KILLED all the same
    except Interrupted as exc:
        announce(prepared, parent_run_id, opened, Status.KILLED, str(exc))
        folder = spool.spool_root(config.storage) / opened if opened else None
        kept, unlogged = what_is_kept(folder)
        raise exc.ended(exc.run_id, kept, unlogged) from None
    except runs.StoreFailed as exc:
        announce(prepared, parent_run_id, opened, Status.FAILED, str(exc))
        folder = spool.spool_root(config.storage) / exc.run_id
        raise exc.keeping(str(folder) if folder.is_dir() else "") from None
    except KitError as exc:
        announce(prepared, parent_run_id, opened, Status.FAILED, str(exc))
        raise
    except Exception as exc:
        reason = f"{type(exc).__name__}: {first_line(exc)}"
        announce(prepared, parent_run_id, opened, Status.FAILED, reason)
        raise
    announce(prepared, parent_run_id, opened, Status.FINISHED)


def announce(
    prepared: preflight.Prepared, parent_run_id: str | None, run_id: str, status: str, error=""
) -> None:
    """The webhook hears how a run of its own ended (never a sweep's configuration)."""
    if parent_run_id is None and run_id:
        notify.run_ended(prepared.config, prepared.tracking_uri, run_id, status, error)


def what_is_kept(folder: Path | None) -> tuple[str, str]:
    """`(kept, unlogged)`: the folder when it keeps files logged but not stored (`sync`
    stores them), or else when it keeps only files the run wrote but never logged (it was
    stopped first: `sync` cannot attach them, the message must not promise it)."""
    if folder is None or not folder.is_dir():
        return "", ""
    journal = spool.Journal.read(folder)
    if journal.pending or journal.damaged:
        return str(folder), ""
    if spool.unlogged_files(folder, journal):
        return "", str(folder)
    return "", ""


def open_writer(prepared: preflight.Prepared, run_id: str, run_root: str) -> ArtifactWriter:
    """The run's asynchronous artifact writer; the run is `kit.artifacts=pending` from now."""
    storage, output = prepared.config.storage, prepared.config.data.output
    to_s3 = run_root.startswith("s3://") or outputs.is_s3(output)
    local_only = local_root(run_root) is not None and not outputs.is_s3(output)
    journal_uri = redact(store_uri(prepared.tracking_uri))
    writer = ArtifactWriter(run_id, journal_uri, storage, warm_s3=to_s3, local_only=local_only)
    try:
        runs.log_tags(run_id, {artifact_state.ARTIFACTS_TAG: artifact_state.PENDING})
    except BaseException:
        writer.close()
        raise
    return writer


@contextmanager
def writing(
    prepared: preflight.Prepared, run_id: str, run_root: str, background: Background
) -> Iterator[ArtifactWriter]:
    """The run's writer for the block. If the run fails, tasks still writing into its
    spool folder finish first, the folder is kept when it holds anything not stored
    (always on a full disk), and `kit.artifacts` says what became of its files. If the
    tracking store failed, the folder is kept with the reason in its journal, and
    `kit.artifacts` is left `pending`: `sync` records it all once the store is back."""
    writer = open_writer(prepared, run_id, run_root)
    try:
        yield writer
    except BaseException as exc:
        background.drain()
        failure = runs.store_failure(exc)
        if failure:  # the folder stays for `sync`, which records what the store could not
            writer.note_failure(f"the tracking store failed: {failure}")
            writer.close(remove_if_complete=False)
            raise
        writer.close(remove_if_complete=not isinstance(exc, SpoolFull))
        record_artifacts_left(run_id, writer)
        fail_unsaved_models(run_id, writer)
        raise
    writer.close()


def fail_unsaved_models(run_id: str, writer: ArtifactWriter) -> None:
    """No logged model of a failed run is left PENDING for ever (`models.fail_unsaved`).
    Bounded, and never hides the run's own error."""
    try:
        with runs.bounded_store():
            models.fail_unsaved(run_id, set(writer.journal.models))
    except Exception as exc:
        log.warning("could not end the run's logged models: %s", redact(first_line(exc)))


def record_artifacts_left(run_id: str, writer: ArtifactWriter) -> None:
    """A failed run's `kit.artifacts`: `pending` (with the list) when files wait in the
    spool, else `complete`, `partial` or `none` (artifact_state). Bounded, and never
    hides the run's own error."""
    journal = writer.journal
    pending = [e.destination for e in journal.pending] + writer.unspooled
    state = artifact_state.state_of(len(pending), journal.sealed, len(journal.entries))
    try:
        with runs.bounded_store():
            artifact_state.mark_artifacts(run_id, pending, state)
    except Exception as exc:
        log.warning("could not record kit.artifacts=%s: %s", state, redact(first_line(exc)))
