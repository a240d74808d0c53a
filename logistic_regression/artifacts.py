"""Asynchronous artifact writing: logging returns at once, a pool uploads, the run's end waits.

`ArtifactWriter.log_file` copies the file into a spool folder (the snapshot: later
changes to the original do not change what is uploaded), appends it to the run's
journal and queues it. Worker threads upload each snapshot (S3 through boto3 with
multipart and a verified ETag; any other artifact store through MLflow's artifact
repository, verified by listing), retrying transient errors with backoff. `flush`
waits, at most `storage.flush_timeout_s`, until every file is verified; files that
are not stay in the spool with the journal, and `sync` uploads them later.

The journal (`journal.jsonl`, append-only, one JSON object per line) survives a
SIGKILL: at worst its last line is cut and ignored. A file lock per run folder makes
`sync` safe to run twice or concurrently, and tells it whether the writing process
is still alive.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import random
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from logistic_regression import s3
from logistic_regression.config import StorageConfig
from logistic_regression.errors import first_line

log = logging.getLogger(__name__)

SPOOL_VARIABLE = "LOGREG_SPOOL_DIR"
JOURNAL = "journal.jsonl"
LOCK = ".lock"
MB = 1024 * 1024


def spool_root(storage: StorageConfig) -> Path:
    """`storage.spool_dir`, else $LOGREG_SPOOL_DIR, else ~/.cache/logistic-regression/spool:
    a place that outlives the run's working folder (`mlflow run <git-url>` uses a temp one)."""
    configured = storage.spool_dir or os.environ.get(SPOOL_VARIABLE)
    if configured:
        return Path(configured).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "logistic-regression" / "spool"


@dataclass(frozen=True)
class Entry:
    """One file to upload: its snapshot in the spool and the artifact it becomes."""

    id: int
    source: str  # relative to the run's spool folder
    root: str  # artifact root URI (a run's or a logged model's)
    path: str  # artifact path under the root, with the file name
    size: int

    @property
    def destination(self) -> str:
        return f"{self.root.rstrip('/')}/{self.path}"


@dataclass
class Journal:
    """What one run's spool folder says: who wrote it, what was queued, what is verified."""

    run_id: str = ""
    tracking_uri: str = ""
    pid: int = 0
    entries: dict[int, Entry] = field(default_factory=dict)
    verified: set[int] = field(default_factory=set)
    errors: dict[int, str] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)

    @property
    def pending(self) -> list[Entry]:
        return [e for i, e in sorted(self.entries.items()) if i not in self.verified]

    @classmethod
    def read(cls, folder: Path) -> Journal:
        journal = cls()
        path = folder / JOURNAL
        if not path.exists():
            return journal
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash; what it announced is re-done by `sync`
            event = record.pop("event", "")
            if event == "run":
                journal.run_id = record["run_id"]
                journal.tracking_uri = record["tracking_uri"]
                journal.pid = record.get("pid", 0)
            elif event == "queued":
                journal.entries[record["id"]] = Entry(**record)
            elif event == "verified":
                journal.verified.add(record["id"])
            elif event == "failed":
                journal.errors[record["id"]] = record["error"]
            elif event == "model":
                journal.models.append(record["model_id"])
        return journal


@dataclass(frozen=True)
class FlushResult:
    uploaded: int
    pending: list[str]
    errors: list[str]
    seconds: float

    @property
    def complete(self) -> bool:
        return not self.pending


def expected_etag(path: Path, threshold: int, chunk: int) -> str:
    """The ETag S3 gives an object uploaded by boto3 with these multipart settings:
    the MD5 of the bytes, or for multipart the MD5 of the parts' MD5s, `-<parts>`."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        if size < threshold:
            return hashlib.file_digest(handle, "md5").hexdigest()
        digests = [hashlib.md5(block).digest() for block in iter(lambda: handle.read(chunk), b"")]
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


class Destination:
    """Uploads and verifies one file; S3 roots via boto3, every other root via MLflow."""

    def __init__(self, storage: StorageConfig, tracking_uri: str) -> None:
        self.storage = storage
        self.tracking_uri = tracking_uri
        self._s3 = None
        self._lock = threading.Lock()

    def _s3_client(self):
        with self._lock:
            if self._s3 is None:
                workers = self.storage.upload_workers
                self._s3 = s3.client(max_attempts=2, pool_size=workers * 2 + 2)
            return self._s3

    def put(self, entry: Entry, local: Path, progress: Callable[[int], None]) -> None:
        if entry.root.startswith("s3://"):
            self._put_s3(entry, local, progress)
        else:
            self._put_mlflow(entry, local)
            progress(entry.size)

    def _put_s3(self, entry: Entry, local: Path, progress: Callable[[int], None]) -> None:
        from boto3.s3.transfer import TransferConfig

        bucket, key = s3.split_uri(entry.destination)
        threshold = self.storage.multipart_threshold_mb * MB
        chunk = self.storage.multipart_chunksize_mb * MB
        transfer = TransferConfig(
            multipart_threshold=threshold,
            multipart_chunksize=chunk,
            max_concurrency=self.storage.upload_workers,
        )
        client = self._s3_client()
        client.upload_file(str(local), bucket, key, Config=transfer, Callback=progress)
        head = client.head_object(Bucket=bucket, Key=key)
        etag = head.get("ETag", "").strip('"')
        if head["ContentLength"] != entry.size:
            raise OSError(f"verify: {head['ContentLength']} bytes stored, {entry.size} sent")
        if etag != expected_etag(local, threshold, chunk):
            raise OSError(f"verify: stored ETag {etag} does not match the bytes sent")

    def _put_mlflow(self, entry: Entry, local: Path) -> None:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repo = get_artifact_repository(entry.root, tracking_uri=self.tracking_uri)
        folder = os.path.dirname(entry.path) or None
        repo.log_artifact(str(local), folder)
        listed = {info.path: info.file_size for info in repo.list_artifacts(folder)}
        if listed.get(entry.path) != entry.size:
            raise OSError(f"verify: {entry.path} is not stored with {entry.size} bytes")


class ArtifactWriter:
    """One run's asynchronous uploads. Use as a context manager; call `flush` at the end."""

    def __init__(self, run_id: str, tracking_uri: str, storage: StorageConfig) -> None:
        self.storage = storage
        self.folder = spool_root(storage) / run_id
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.folder / LOCK))
        self._lock.acquire(timeout=0)
        self.journal = Journal.read(self.folder)
        self._journal_file = (self.folder / JOURNAL).open("a", encoding="utf-8")
        self._state = threading.Condition()
        self._outstanding = 0
        self._uploaded_bytes = 0
        self._queue: queue.Queue[Entry | None] = queue.Queue()
        self._give_up = threading.Event()
        self._destination = Destination(storage, tracking_uri)
        self._progress = None
        self._threads = [
            threading.Thread(target=self._work, name=f"artifact-upload-{n}", daemon=True)
            for n in range(storage.upload_workers)
        ]
        if not self.journal.run_id:
            self.journal.run_id, self.journal.tracking_uri = run_id, tracking_uri
            self._append(event="run", run_id=run_id, tracking_uri=tracking_uri, pid=os.getpid())
        for thread in self._threads:
            thread.start()

    # -- what the training thread calls: all of it returns without touching the network --

    def log_file(self, path: Path, root: str, artifact_path: str = "") -> None:
        """Snapshot `path` now and queue it as `<root>/<artifact_path>/<name>`."""
        entry_id = len(self.journal.entries)
        snapshot = self.folder / "files" / str(entry_id) / path.name
        snapshot.parent.mkdir(parents=True)
        shutil.copyfile(path, snapshot)
        self._queue_entry(entry_id, snapshot, root, _join(artifact_path, path.name))

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
            entry_id = len(self.journal.entries)
            self._queue_entry(entry_id, path, root, _join(artifact_path, relative))

    def finalize_model_when_stored(self, model_id: str) -> None:
        """Mark a logged model READY once every file is verified (here, or by `sync`)."""
        self.journal.models.append(model_id)
        self._append(event="model", model_id=model_id)

    # -- the end of the run --

    def flush(self, timeout: float | None = None) -> FlushResult:
        """Wait until every queued file is verified or the bound passes; never longer."""
        bound = self.storage.flush_timeout_s if timeout is None else timeout
        started = time.monotonic()
        deadline = started + bound
        self._start_progress()
        with self._state:
            while self._outstanding and time.monotonic() < deadline:
                self._state.wait(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
        self._stop_progress()
        if self._outstanding:
            self._give_up.set()
        pending = self.journal.pending
        return FlushResult(
            uploaded=len(self.journal.verified),
            pending=[e.destination for e in pending],
            errors=sorted(
                {self.journal.errors[e.id] for e in pending if e.id in self.journal.errors}
            ),
            seconds=time.monotonic() - started,
        )

    def close(self, remove_if_complete: bool = True) -> None:
        self._give_up.set()
        for _ in self._threads:
            self._queue.put(None)
        with self._state:
            self._journal_file.close()
        if remove_if_complete and not self.journal.pending:
            _remove_spool_folder(self.folder)
        self._lock.release()

    def __enter__(self) -> ArtifactWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals --

    def _append(self, **record: object) -> None:
        with self._state:
            if self._journal_file.closed:  # a late upload after close: `sync` re-checks it
                return
            self._journal_file.write(json.dumps(record) + "\n")
            self._journal_file.flush()

    def _queue_entry(self, entry_id: int, local: Path, root: str, path: str) -> None:
        source = local.relative_to(self.folder).as_posix()
        entry = Entry(entry_id, source, root, path, local.stat().st_size)
        self._requeue(entry, announce=True)

    def _requeue(self, entry: Entry, announce: bool) -> None:
        with self._state:
            self.journal.entries[entry.id] = entry
            self._outstanding += 1
            if announce:
                self._journal_file.write(json.dumps({"event": "queued", **asdict(entry)}) + "\n")
                self._journal_file.flush()
        self._queue.put(entry)

    def resume(self) -> int:
        """Queue what an earlier process left unverified; returns how many files."""
        pending = self.journal.pending
        for entry in pending:
            self._requeue(entry, announce=False)
        return len(pending)

    def _work(self) -> None:
        while (entry := self._queue.get()) is not None:
            try:
                if not self._give_up.is_set():
                    self._upload_with_retries(entry)
            finally:
                with self._state:
                    self._outstanding -= 1
                    self._state.notify_all()

    def _upload_with_retries(self, entry: Entry) -> None:
        retry = self.storage.retry
        local = self.folder / entry.source
        for attempt in range(1, retry.max_attempts + 1):
            try:
                self._destination.put(entry, local, self._advance)
            except Exception as exc:  # every failure is retried, then recorded, never raised
                error = f"{entry.path}: {type(exc).__name__}: {first_line(exc)}"
                if attempt == retry.max_attempts or self._give_up.is_set():
                    self.journal.errors[entry.id] = error
                    self._append(event="failed", id=entry.id, error=error)
                    log.debug("upload failed after %d attempts: %s", attempt, error)
                    return
                pause = min(retry.max_backoff_s, retry.backoff_s * 2 ** (attempt - 1))
                if self._give_up.wait(pause * (0.5 + random.random() / 2)):
                    return
            else:
                with self._state:
                    self.journal.verified.add(entry.id)
                self._append(event="verified", id=entry.id)
                return

    def _advance(self, size: int) -> None:
        if self._progress is not None:
            self._progress.update(size)

    def _start_progress(self) -> None:
        total = sum(e.size for e in self.journal.pending)
        if self.storage.progress and sys.stderr.isatty() and total >= 8 * MB:
            from tqdm import tqdm

            self._progress = tqdm(
                total=total, unit="B", unit_scale=True, desc="uploading artifacts", leave=False
            )

    def _stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None


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
    """Upload what one spool folder still holds. A folder another process holds (a run
    still training, or a concurrent `sync`) is skipped as busy: its lock says so.
    `on_complete(journal)` records the outcome in MLflow once every file is verified."""
    journal = Journal.read(folder)
    if not journal.run_id:  # nothing recorded, or another sync has just cleaned it up
        _remove_spool_folder(folder)
        return SyncOutcome(folder.name, "complete", 0, [], [])
    try:
        writer = ArtifactWriter(journal.run_id, tracking_uri or journal.tracking_uri, storage)
    except Timeout:
        return SyncOutcome(journal.run_id, "busy", 0, [], [])
    try:
        before = len(writer.journal.verified)
        writer.resume()
        result = writer.flush()
        if result.complete:
            on_complete(writer.journal)
        return SyncOutcome(
            journal.run_id,
            "complete" if result.complete else "pending",
            len(writer.journal.verified) - before,
            result.pending,
            result.errors,
        )
    finally:
        writer.close()
