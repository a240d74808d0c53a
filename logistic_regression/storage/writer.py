"""Asynchronous artifact writing: logging returns at once, uploads run beside training,
the run's end waits for them.

`ArtifactWriter` is the run's one artifact component: `put_bytes` (files the kit made),
`model_folder`/`put_model` (the saved model), `log_file`/`log_folder` (files by path,
copied into the spool when logged: docs/artifacts.md), `flush(bound)` and `close`.
It writes each file into the run's spool folder, checks the disk has room first (a full
disk is `SpoolFull`: one line naming the folder and the space missing), appends it to
the journal (`spool.py`) and hands it to the upload engine (`uploads.py`, `uploader.py`),
which uploads, retries, verifies and records each outcome: the training thread never
touches the network. `flush` waits, at most `storage.flush_timeout_s`, until every file
is verified; files that are not stay in the spool with the journal for `sync`.

The journal (`journal.jsonl`, append-only) survives a SIGKILL: at worst its last line is
cut and ignored. A file lock per run folder makes `sync` safe to run twice or
concurrently, and tells it whether the writing process is still alive. `close` never
removes a folder that holds a file not stored: a pending entry, or a file the run wrote
but never logged (it failed first); that folder stays for `sync` or for a person.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path

from filelock import FileLock

from logistic_regression.config import StorageConfig
from logistic_regression.errors import StorageError
from logistic_regression.storage.spool import (
    FILES,
    JOURNAL,
    JOURNAL_VERSION,
    LOCK,
    MARGIN,
    RESULTS,
    SCRATCH,
    Entry,
    Journal,
    free_bytes,
    human_size,
    remove_folder,
    repair_tail,
    spool_root,
    tail,
    unlogged_files,
)
from logistic_regression.storage.uploader import Settings
from logistic_regression.storage.uploads import UploadProcess, UploadThreads


class SpoolFull(StorageError):
    """The spool's disk has no room for what the run has to write there; the run's
    folder is kept with everything it holds."""


def disk_full(exc: BaseException) -> bool:
    """True when `exc`, or an exception it was raised from, is ENOSPC (or EDQUOT)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass(frozen=True)
class FlushResult:
    uploaded: int
    pending: list[str]
    errors: list[str]

    @property
    def complete(self) -> bool:
        return not self.pending


class ArtifactWriter:
    """One run's asynchronous uploads. Use as a context manager; call `flush` at the end.

    Opening it on a folder that already holds unverified files (left by an earlier
    process) uploads those too."""

    def __init__(
        self,
        run_id: str,
        tracking_uri: str,
        storage: StorageConfig,
        warm_s3: bool = False,
        local_only: bool = False,
    ) -> None:
        """`warm_s3`: files will go to S3 (an s3:// output) even if storage.kind is local.
        `local_only`: every file goes to a local folder, so the engine runs in threads
        here (`UploadThreads`) instead of an uploader process."""
        self.storage = storage
        self.folder = spool_root(storage) / run_id
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.folder / LOCK))
        self._lock.acquire(timeout=0)
        try:
            for log in (JOURNAL, RESULTS):  # a line cut by a crash must not swallow the next
                repair_tail(self.folder / log)
            self.journal = Journal.read(self.folder)
            self._results_offset = (
                (self.folder / RESULTS).stat().st_size if (self.folder / RESULTS).exists() else 0
            )
            self._failed_now: set[int] = set()
            self._journal_file = (self.folder / JOURNAL).open("ab", buffering=0)
            self._journal_error: Exception | None = None
            self._append_lock = threading.Lock()
            self.journal.pid, self.journal.closed = os.getpid(), False
            if not self.journal.run_id:
                self.journal.run_id, self.journal.tracking_uri = run_id, tracking_uri
                self.journal.version = JOURNAL_VERSION
                self._append(
                    event="run",
                    run_id=run_id,
                    tracking_uri=tracking_uri,
                    pid=os.getpid(),
                    version=JOURNAL_VERSION,
                )
            else:
                self._append(event="opened", pid=os.getpid())
            settings = Settings.from_storage(storage, tracking_uri, warm_s3)
            self._uploads: UploadProcess | UploadThreads = (
                UploadThreads(self.folder, settings, self.journal)
                if local_only and not warm_s3
                else UploadProcess(self.folder, settings)
            )
            self._next_id = max(self.journal.entries, default=-1) + 1
            self.unspooled: list[str] = []
        except BaseException:  # a signal or a full disk while opening: leave nothing behind
            self._abandon()
            raise

    def _abandon(self) -> None:
        """Opening failed half-way: stop what was started and release the folder. Nothing
        was queued by this writer, so a folder whose journal lists no file is removed; one
        that already held files (left by an earlier process) is kept for `sync`."""
        uploads = getattr(self, "_uploads", None)
        if uploads is not None:
            uploads.kill()
        journal_file = getattr(self, "_journal_file", None)
        if journal_file is not None:
            with suppress(OSError):
                journal_file.close()
        journal = getattr(self, "journal", None)
        try:
            if journal is not None and not journal.entries:
                remove_folder(self.folder)
        finally:
            self._lock.release()

    # -- what the training thread calls: none of it touches the network --

    def log_file(self, path: Path, root: str, artifact_path: str = "", model_id: str = "") -> None:
        """Queue `path` as `<root>/<artifact_path>/<name>`, an artifact of the run (or of
        the logged model `model_id`). Its bytes are copied into the spool now (one kernel
        copy): later changes to the file or its deletion never reach the store, and the
        uploader only ever reads the spool's own files."""
        path = Path(os.path.abspath(path))
        size = path.stat().st_size  # a missing file fails here, in the caller
        entry_id = self._take_id()
        target = _join(artifact_path, path.name)
        copy = self.folder / FILES / str(entry_id) / path.name
        try:
            with self.room_for(size, str(path)):
                copy.parent.mkdir(parents=True)
                shutil.copyfile(path, copy)  # sendfile: no Python buffer
        except (OSError, SpoolFull) as exc:  # the spool's disk is full or gone: say so at flush
            shutil.rmtree(copy.parent, ignore_errors=True)  # a partial copy holds nothing
            reason = str(exc) if isinstance(exc, SpoolFull) else exc.strerror or str(exc)
            self.unspooled.append(f"{target} (not spooled: {reason})")
            return
        source = copy.relative_to(self.folder).as_posix()
        self._queue(Entry(entry_id, source, root, target, copy.stat().st_size, "", model_id))

    def log_folder(
        self, folder: Path, root: str, artifact_path: str = "", model_id: str = ""
    ) -> None:
        """`log_file` for every file under `folder`, keeping the relative layout."""
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            relative = path.relative_to(folder).parent.as_posix()
            where = _join(artifact_path, "" if relative == "." else relative)
            self.log_file(path, root, where, model_id)

    def scratch(self, name: str) -> Path:
        """A folder inside the spool to build files in (a saved model); queue them with
        `adopt_folder`, which then needs no copy."""
        path = self.folder / SCRATCH / name
        shutil.rmtree(path, ignore_errors=True)
        with self.room_for(0, f"the folder {SCRATCH}/{name}", check=False):
            path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def put_bytes(self, files: Mapping[str, bytes], root: str, what: str, name: str) -> None:
        """Write `files` (file name -> content) into the spool folder `name` and queue them
        under `root`, once the spool's disk is known to have room for all of them
        (`SpoolFull` naming `what` if not, or if the disk fills anyway)."""
        with self.room_for(sum(map(len, files.values())), what):
            staging = self.scratch(name)
            staging.mkdir()
            for file_name, content in files.items():
                (staging / file_name).write_bytes(content)
        self.adopt_folder(staging, root)

    def model_folder(self, needed: int) -> Path:
        """The spool folder a model of about `needed` bytes is saved into (`put_model`);
        `SpoolFull` now when the disk has no room for it."""
        self.ensure_space(needed, "the model")
        return self.scratch("model")

    def put_model(
        self, folder: Path, root: str, model_id: str, saved: Callable[[], object], needed: int
    ) -> None:
        """Queue the logged model `model_id` that `saved()` writes into `folder` (waited
        for here: a full disk met while it wrote is `SpoolFull`); it is marked READY once
        every file of it is stored (here, or by `sync`)."""
        with self.room_for(needed, "the model", check=False):
            saved()
        self.adopt_folder(folder, root, model_id=model_id)
        self.finalize_model_when_stored(model_id)

    def adopt_folder(
        self, folder: Path, root: str, artifact_path: str = "", model_id: str = ""
    ) -> None:
        """Queue the files of a folder made with `scratch`, as they are (it is ours)."""
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            target = _join(artifact_path, path.relative_to(folder).as_posix())
            source = path.relative_to(self.folder).as_posix()
            self._queue(
                Entry(self._take_id(), source, root, target, path.stat().st_size, "", model_id)
            )

    def ensure_space(self, needed: int, what: str) -> None:
        """Refuse (SpoolFull) a write of `needed` bytes the spool's disk has no room for."""
        if free_bytes(self.folder) < needed + MARGIN:
            raise self.full(needed, what)

    @contextmanager
    def room_for(self, needed: int, what: str, check: bool = True) -> Iterator[None]:
        """Around a write of about `needed` bytes into the spool: checked first (unless
        `check` is False: the write may already have happened elsewhere), and a full
        disk met anyway (another process filled it) becomes SpoolFull."""
        if check:
            self.ensure_space(needed, what)
        try:
            yield
        except Exception as exc:
            if disk_full(exc):
                raise self.full(needed, what) from exc
            raise

    def full(self, needed: int, what: str) -> SpoolFull:
        """The one-line error for a spool with no room for `what` (`needed` bytes)."""
        with suppress(OSError):
            free = free_bytes(self.folder)
            missing = max(needed + MARGIN - free, 1)
            return SpoolFull(
                f"the spool's disk is full: {what} needs {human_size(needed)} (and "
                f"{human_size(MARGIN)} kept free for the spool's logs), {human_size(free)} "
                f"is free: {human_size(missing)} missing; this run's files are kept in "
                f"{self.folder} (free space there, or set storage.spool_dir to another disk)"
            )
        return SpoolFull(f"the spool's disk is full; this run's files are kept in {self.folder}")

    def finalize_model_when_stored(self, model_id: str) -> None:
        """Mark a logged model READY once every file is verified (here, or by `sync`)."""
        self.journal.models.append(model_id)
        self._append(event="model", model_id=model_id)

    def note_failure(self, reason: str) -> None:
        """Why the run stopped when the tracking store failed (a `failure` journal line):
        `sync` ends the run FAILED with it if the run could not be ended then."""
        self.journal.failure = reason
        with suppress(OSError, SpoolFull):
            self._append(event="failure", reason=reason)

    # -- the end of the run --

    def flush(self, timeout: float | None = None) -> FlushResult:
        """Wait until every queued file is verified (or failed for good), or the bound
        passes; never longer. Flushing says the run's logging is over (`sealed` in the
        journal), so `sync` may later call it complete; a file logged after a flush
        opens it again until the next one."""
        bound = self.storage.flush_timeout_s if timeout is None else timeout
        if not self.journal.sealed:  # the run's logging is over: `sync` may call it complete
            self.journal.sealed = True
            with suppress(OSError, SpoolFull):  # a full disk: `sync` then says partial
                self._append(event="sealed")
        deadline = time.monotonic() + bound
        while True:
            self._read_results()
            unsettled = [e for e in self.journal.pending if e.id not in self._failed_now]
            if not unsettled or time.monotonic() >= deadline:
                break
            if not self._uploads.alive():
                break  # the uploader died; what it did not verify stays for `sync`
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        pending = self.journal.pending
        return FlushResult(
            uploaded=len(self.journal.verified),
            pending=[e.destination for e in pending] + self.unspooled,
            errors=self.journal.errors_of(pending),
        )

    def close(self, remove_if_complete: bool = True) -> None:
        """Stop the uploads and release the folder. It is removed (with
        `remove_if_complete`) only when it holds nothing unstored: every entry verified
        and no file the run wrote there without logging it."""
        try:
            self._uploads.stop()
            with suppress(OSError, SpoolFull):  # a full disk: the journal ends without it
                self._append(event="closed")
            self.journal.closed = True
            with suppress(OSError):
                self._journal_file.close()
            self._read_results()
            if (
                remove_if_complete
                and not self.journal.pending
                and not unlogged_files(self.folder, self.journal)
            ):
                remove_folder(self.folder)
        finally:
            self._lock.release()

    def __enter__(self) -> ArtifactWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals --

    def _append(self, **record: object) -> None:
        """One journal line, in one write(2). After a failed write the journal takes no
        more lines: a line glued to a cut one would be lost to every reader."""
        line = (json.dumps(record) + "\n").encode()
        with self._append_lock:
            if self._journal_error is not None:
                raise self._journal_error
            try:
                view = memoryview(line)
                while view:
                    view = view[self._journal_file.write(view) or 0 :]
            except OSError as exc:
                failed = self.full(len(line), "a journal line") if disk_full(exc) else exc
                self._journal_error = failed
                raise failed from exc

    def _take_id(self) -> int:
        with self._append_lock:
            entry_id = self._next_id
            self._next_id += 1
        return entry_id

    def _queue(self, entry: Entry) -> None:
        if not entry.model_id:
            entry = replace(entry, run_id=self.journal.run_id)
        self.journal.entries[entry.id] = entry
        self.journal.sealed = False  # as readers of the journal see it: open until a flush
        self._append(event="queued", **vars(entry))
        self._uploads.queued(entry)

    def _read_results(self) -> None:
        records, self._results_offset = tail(self.folder / RESULTS, self._results_offset)
        for record in records:
            self.journal.apply(record)
            if record.get("event") == "failed":
                self._failed_now.add(record["id"])


def _join(folder: str, name: str) -> str:
    return f"{folder.strip('/')}/{name}" if folder.strip("/") else name
