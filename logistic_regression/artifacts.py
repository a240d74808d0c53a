"""Asynchronous artifact writing: logging returns at once, uploads run in another
process, the run's end waits for them.

`ArtifactWriter.log_file` reads the file's bytes (the snapshot: later changes to the
original do not change what is uploaded) and hands them to a spooler thread, which
writes them into the run's spool folder, appends the entry to the journal and wakes
the uploader process (`uploader.py`); that process uploads, retries, verifies and
records each outcome. The training thread pays for one read, never for a disk write
or the network (files from `KERNEL_COPY_FROM` up are copied by the kernel). `flush`
waits, at most `storage.flush_timeout_s`, until every file is verified; files that are
not stay in the spool with the journal, and `sync` uploads them later.

The journal (`journal.jsonl`, append-only, one JSON object per line) survives a
SIGKILL: at worst its last line is cut and ignored. A file lock per run folder makes
`sync` safe to run twice or concurrently, and tells it whether the writing process
is still alive.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from logistic_regression.config import StorageConfig
from logistic_regression.uploader import (
    JOURNAL,
    RESULTS,
    Engine,
    Entry,
    Journal,
    Settings,
    settings_argument,
    tail,
)

SPOOL_VARIABLE = "LOGREG_SPOOL_DIR"
LOCK = ".lock"
# Snapshots held in memory until the spooler has written them; above this, `log_file`
# waits for the spooler (a bigger single file is copied on disk right away).
MAX_IN_MEMORY = 512 * 1024 * 1024
# Files this large are copied by the kernel straight into the spool (measured faster
# than reading them into memory: no user-space buffer to fault in).
KERNEL_COPY_FROM = 16 * 1024 * 1024

__all__ = ["ArtifactWriter", "Entry", "FlushResult", "Journal", "spool_root", "sync_run"]


def spool_root(storage: StorageConfig) -> Path:
    """`storage.spool_dir`, else $LOGREG_SPOOL_DIR, else ~/.cache/logistic-regression/spool:
    a place that outlives the run's working folder (`mlflow run <git-url>` uses a temp one)."""
    configured = storage.spool_dir or os.environ.get(SPOOL_VARIABLE)
    if configured:
        return Path(configured).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "logistic-regression" / "spool"


@dataclass(frozen=True)
class FlushResult:
    uploaded: int
    pending: list[str]
    errors: list[str]
    seconds: float

    @property
    def complete(self) -> bool:
        return not self.pending


class ArtifactWriter:
    """One run's asynchronous uploads. Use as a context manager; call `flush` at the end.

    Opening it on a folder that already holds unverified files (left by an earlier
    process) uploads those too."""

    def __init__(
        self, run_id: str, tracking_uri: str, storage: StorageConfig, warm_s3: bool = False
    ) -> None:
        """`warm_s3`: files will go to S3 (an s3:// output) even if storage.kind is local."""
        self.storage = storage
        self.folder = spool_root(storage) / run_id
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.folder / LOCK))
        self._lock.acquire(timeout=0)
        self.journal = Journal.read(self.folder)
        self._results_offset = (
            (self.folder / RESULTS).stat().st_size if (self.folder / RESULTS).exists() else 0
        )
        self._failed_now: set[int] = set()
        self._journal_file = (self.folder / JOURNAL).open("a", encoding="utf-8")
        if not self.journal.run_id:
            self.journal.run_id, self.journal.tracking_uri = run_id, tracking_uri
            self._append(event="run", run_id=run_id, tracking_uri=tracking_uri, pid=os.getpid())
        settings = Settings.from_storage(storage, tracking_uri, warm_s3)
        self._uploader = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "logistic_regression.uploader",
                str(self.folder),
                settings_argument(settings),
            ],
            stdin=subprocess.PIPE,
        )
        self._next_id = len(self.journal.entries)
        self.unspooled: list[str] = []
        self._in_memory = 0
        self._memory = threading.Condition()
        self._spool: queue.Queue[tuple | None] = queue.Queue()
        self._spooler = threading.Thread(target=self._write_spool, name="spooler", daemon=True)
        self._spooler.start()

    # -- what the training thread calls: all of it returns without touching the network --

    def log_file(self, path: Path, root: str, artifact_path: str = "") -> None:
        """Snapshot `path` now and queue it as `<root>/<artifact_path>/<name>`.

        storage.snapshot=copy (default) takes the bytes now (read into memory, or copied
        by the kernel from `KERNEL_COPY_FROM` up); =link makes a hard link
        instead (no copy at all: right for files that are replaced, never rewritten in
        place, after logging), falling back to a copy across filesystems."""
        entry_id = self._take_id()
        snapshot = self.folder / "files" / str(entry_id) / path.name
        target = _join(artifact_path, path.name)
        link = self.storage.snapshot == "link"
        if link or path.stat().st_size >= KERNEL_COPY_FROM:
            snapshot.parent.mkdir(parents=True)
            if not (link and _hard_link(path, snapshot)):
                shutil.copyfile(path, snapshot)  # sendfile: no Python buffer, no page faults
            self._spool.put((entry_id, snapshot, None, root, target))
            return
        data = path.read_bytes()
        with self._memory:
            self._memory.wait_for(lambda: self._in_memory + len(data) <= MAX_IN_MEMORY)
            self._in_memory += len(data)
        self._spool.put((entry_id, snapshot, data, root, target))

    def log_folder(self, folder: Path, root: str, artifact_path: str = "") -> None:
        """Snapshot every file under `folder` and queue them, keeping the relative layout."""
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = path.relative_to(folder).parent.as_posix()
            self.log_file(path, root, _join(artifact_path, "" if relative == "." else relative))

    def scratch(self, name: str) -> Path:
        """A folder inside the spool to build files in (a saved model); adopt it with
        `adopt_folder`, which then needs no copy."""
        path = self.folder / "scratch" / name
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def adopt_folder(self, folder: Path, root: str, artifact_path: str = "") -> None:
        """Queue the files of a folder made with `scratch`, as they are (it is ours)."""
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = path.relative_to(folder).as_posix()
            self._spool.put((self._take_id(), path, None, root, _join(artifact_path, relative)))

    def finalize_model_when_stored(self, model_id: str) -> None:
        """Mark a logged model READY once every file is verified (here, or by `sync`)."""
        self.journal.models.append(model_id)
        self._spool.put(("model", model_id))

    def resume(self) -> int:
        """How many files an earlier process left unverified (the uploader takes them)."""
        return len(self.journal.pending)

    # -- the end of the run --

    def flush(self, timeout: float | None = None) -> FlushResult:
        """Wait until every queued file is verified (or failed for good), or the bound
        passes; never longer."""
        bound = self.storage.flush_timeout_s if timeout is None else timeout
        started = time.monotonic()
        deadline = started + bound
        self._spool.join()  # local disk writes only: every snapshot is in the spool
        while True:
            self._read_results()
            unsettled = [e for e in self.journal.pending if e.id not in self._failed_now]
            if not unsettled or time.monotonic() >= deadline:
                break
            if self._uploader.poll() is not None:
                break  # the uploader died; what it did not verify stays for `sync`
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        pending = self.journal.pending
        return FlushResult(
            uploaded=len(self.journal.verified),
            pending=[e.destination for e in pending] + self.unspooled,
            errors=self.journal.errors_of(pending),
            seconds=time.monotonic() - started,
        )

    def close(self, remove_if_complete: bool = True) -> None:
        self._spool.join()
        self._spool.put(None)
        self._spooler.join()
        with suppress(OSError):
            self._uploader.stdin.close()  # the uploader exits at once
        with suppress(subprocess.TimeoutExpired):
            self._uploader.wait(timeout=10)
        if self._uploader.poll() is None:
            self._uploader.kill()
            self._uploader.wait()
        self._journal_file.close()
        self._read_results()
        if remove_if_complete and not self.journal.pending:
            _remove_spool_folder(self.folder)
        self._lock.release()

    def __enter__(self) -> ArtifactWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals --

    def _append(self, **record: object) -> None:
        self._journal_file.write(json.dumps(record) + "\n")
        self._journal_file.flush()

    def _take_id(self) -> int:
        entry_id = self._next_id
        self._next_id += 1
        return entry_id

    def _write_spool(self) -> None:
        """The spooler thread: snapshots to disk, entries to the journal, in order."""
        while (item := self._spool.get()) is not None:
            try:
                if item[0] == "model":
                    self._append(event="model", model_id=item[1])
                    continue
                entry_id, snapshot, data, root, target = item
                try:
                    if data is not None:
                        snapshot.parent.mkdir(parents=True)
                        snapshot.write_bytes(data)
                    self._queue(entry_id, snapshot, root, target)
                except OSError as exc:  # the spool's disk is full or gone: say so at flush
                    self.unspooled.append(f"{target} (not spooled: {exc.strerror or exc})")
                finally:
                    if data is not None:
                        with self._memory:
                            self._in_memory -= len(data)
                            self._memory.notify_all()
            finally:
                self._spool.task_done()

    def _queue(self, entry_id: int, local: Path, root: str, path: str) -> None:
        source = local.relative_to(self.folder).as_posix()
        entry = Entry(entry_id, source, root, path, local.stat().st_size)
        self.journal.entries[entry.id] = entry
        self._append(event="queued", **asdict(entry))
        with suppress(OSError):  # wake the uploader; if it is gone, `sync` will do it
            self._uploader.stdin.write(b"\n")
            self._uploader.stdin.flush()

    def _read_results(self) -> None:
        records, self._results_offset = tail(self.folder / RESULTS, self._results_offset)
        for record in records:
            self.journal.apply(record)
            if record.get("event") == "failed":
                self._failed_now.add(record["id"])


def _hard_link(source: Path, link: Path) -> bool:
    """False where a hard link cannot be made (another filesystem): copy instead."""
    try:
        os.link(source, link)
    except OSError:
        return False
    return True


def _join(folder: str, name: str) -> str:
    return f"{folder.strip('/')}/{name}" if folder.strip("/") else name


def _remove_spool_folder(folder: Path) -> None:
    for child in folder.iterdir():
        if child.name == LOCK:
            continue
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    with suppress(OSError):
        (folder / LOCK).unlink()
        folder.rmdir()


@dataclass(frozen=True)
class SyncOutcome:
    run_id: str
    state: str  # "complete", "pending", "busy"
    uploaded: int
    pending: list[str]
    errors: list[str]


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
        _remove_spool_folder(folder)
    return outcome
