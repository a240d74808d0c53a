"""The upload engine, in its own process so uploads never take the GIL from training.

`ArtifactWriter` starts `python -m logistic_regression.uploader FOLDER SETTINGS` per run.
The process follows the run's `journal.jsonl` (a new line on its stdin says "look
again"), uploads every queued file with a pool of threads, retries with backoff, verifies
each object, and appends the outcome to `results.jsonl`. End of stdin means the writer
is done or dead: the process exits at once, and whatever is unverified is `sync`'s job.
`sync` runs the same `Engine` in its own process.

Destinations: `s3://` roots through boto3 (small files as one PUT whose Content-MD5 the
store checks; large ones multipart, verified against the S3 multipart ETag computed while
the upload runs); local roots (a path or `file://`) by copying; any other MLflow artifact
root (`mlflow-artifacts:` through a tracking server) through MLflow's public artifact
repository API, verified by listing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from logistic_regression.errors import first_line

JOURNAL = "journal.jsonl"
RESULTS = "results.jsonl"
MB = 1024 * 1024
PROGRESS_MIN_BYTES = 8 * MB


@dataclass(frozen=True)
class Entry:
    """One file to upload: its snapshot in the spool and the artifact it becomes."""

    id: int
    source: str  # relative to the run's spool folder
    root: str  # artifact root URI (a run's, a logged model's, or an s3:// output)
    path: str  # artifact path under the root, with the file name
    size: int

    @property
    def destination(self) -> str:
        return f"{self.root.rstrip('/')}/{self.path}"


@dataclass(frozen=True)
class Settings:
    """What the engine needs from `storage` (never a secret: those stay in the AWS chain)."""

    workers: int = 8
    multipart_threshold_mb: int = 64
    multipart_chunksize_mb: int = 16
    max_attempts: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 10.0
    tracking_uri: str = ""
    progress: bool = False
    warm_s3: bool = False  # make the S3 client at start, before the first file arrives

    @classmethod
    def from_storage(cls, storage, tracking_uri: str, warm_s3: bool = False) -> Settings:
        return cls(
            workers=storage.upload_workers,
            multipart_threshold_mb=storage.multipart_threshold_mb,
            multipart_chunksize_mb=storage.multipart_chunksize_mb,
            max_attempts=storage.retry.max_attempts,
            backoff_s=storage.retry.backoff_s,
            max_backoff_s=storage.retry.max_backoff_s,
            tracking_uri=tracking_uri,
            progress=storage.progress and sys.stderr.isatty(),
            warm_s3=storage.kind == "s3" or bool(warm_s3),
        )


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

    def errors_of(self, entries: list[Entry]) -> list[str]:
        """The distinct last errors recorded for these entries."""
        return sorted({self.errors[e.id] for e in entries if e.id in self.errors})

    def apply(self, record: dict) -> None:
        event = record.get("event")
        if event == "run":
            self.run_id, self.tracking_uri = record["run_id"], record["tracking_uri"]
            self.pid = record.get("pid", 0)
        elif event == "queued":
            self.entries[record["id"]] = Entry(
                **{k: record[k] for k in ("id", "source", "root", "path", "size")}
            )
        elif event == "verified":
            self.verified.add(record["id"])
            self.errors.pop(record["id"], None)
        elif event == "failed":
            self.errors[record["id"]] = record["error"]
        elif event == "model":
            self.models.append(record["model_id"])

    @classmethod
    def read(cls, folder: Path) -> Journal:
        journal = cls()
        for name in (JOURNAL, RESULTS):
            for record in read_records(folder / name):
                journal.apply(record)
        return journal


def read_records(path: Path, offset: int = 0) -> list[dict]:
    """Complete JSON lines from `offset` on; a line cut by a crash is skipped."""
    records, _ = tail(path, offset)
    return records


def tail(path: Path, offset: int) -> tuple[list[dict], int]:
    """New complete lines after `offset`, and the offset after the last complete one."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    records = []
    for line in data[:end].splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records, offset + end


def multipart_etag(path: Path, threshold: int, chunk: int) -> str:
    """The ETag S3 gives an object uploaded by boto3 with these multipart settings:
    the MD5 of the bytes, or for multipart the MD5 of the parts' MD5s, `-<parts>`."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        if size < threshold:
            return hashlib.file_digest(handle, "md5").hexdigest()
        digests = [hashlib.md5(block).digest() for block in iter(lambda: handle.read(chunk), b"")]
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def local_root(root: str) -> Path | None:
    """The folder of a local artifact root (a plain path or file://), else None."""
    if root.startswith("file:"):
        return Path(unquote(urlparse(root).path))
    if "://" not in root and ":" not in root.split("/")[0]:
        return Path(root)
    return None


class Destination:
    """Uploads one file and proves it arrived; raises on any failure (the caller retries)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._s3 = None
        self._lock = threading.Lock()

    def _client(self):
        with self._lock:
            if self._s3 is None:
                from logistic_regression import s3

                self._s3 = s3.client(
                    max_attempts=2,
                    pool_size=self.settings.workers * 2 + 2,
                    extra_checksums=False,
                )
            return self._s3

    def warm_up(self) -> None:
        self._client()

    def put(self, entry: Entry, local: Path, progress: Callable[[int], None]) -> None:
        if entry.root.startswith("s3://"):
            self._put_s3(entry, local, progress)
        elif (folder := local_root(entry.root)) is not None:
            target = folder / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, target)
            if target.stat().st_size != entry.size:
                raise OSError(f"verify: {target} does not hold {entry.size} bytes")
            progress(entry.size)
        else:
            self._put_mlflow(entry, local)
            progress(entry.size)

    def _put_s3(self, entry: Entry, local: Path, progress: Callable[[int], None]) -> None:
        from logistic_regression.s3 import split_uri

        bucket, key = split_uri(entry.destination)
        threshold = self.settings.multipart_threshold_mb * MB
        chunk = self.settings.multipart_chunksize_mb * MB
        client = self._client()
        if entry.size < threshold:
            body = local.read_bytes()
            digest = hashlib.md5(body)
            response = client.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ContentMD5=base64.b64encode(digest.digest()).decode(),
            )
            progress(entry.size)
            if response.get("ETag", "").strip('"') != digest.hexdigest():
                raise OSError("verify: the stored ETag does not match the bytes sent")
            return
        from boto3.s3.transfer import TransferConfig

        expected: list[str] = []
        hasher = threading.Thread(
            target=lambda: expected.append(multipart_etag(local, threshold, chunk))
        )
        hasher.start()  # hashes while the parts travel
        transfer = TransferConfig(
            multipart_threshold=threshold,
            multipart_chunksize=chunk,
            max_concurrency=self.settings.workers,
        )
        client.upload_file(str(local), bucket, key, Config=transfer, Callback=progress)
        head = client.head_object(Bucket=bucket, Key=key)
        hasher.join()
        if head["ContentLength"] != entry.size:
            raise OSError(f"verify: {head['ContentLength']} bytes stored, {entry.size} sent")
        if head.get("ETag", "").strip('"') != expected[0]:
            raise OSError("verify: the stored ETag does not match the bytes sent")

    def _put_mlflow(self, entry: Entry, local: Path) -> None:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repo = get_artifact_repository(entry.root, tracking_uri=self.settings.tracking_uri or None)
        folder = os.path.dirname(entry.path) or None
        repo.log_artifact(str(local), folder)
        listed = {info.path: info.file_size for info in repo.list_artifacts(folder)}
        if listed.get(entry.path) != entry.size:
            raise OSError(f"verify: {entry.path} is not stored with {entry.size} bytes")


class Engine:
    """A pool that uploads entries and appends each outcome to `results.jsonl`."""

    def __init__(self, folder: Path, settings: Settings) -> None:
        self.folder = folder
        self.settings = settings
        self.destination = Destination(settings)
        self.stop = threading.Event()
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="upload")
        self._results = (folder / RESULTS).open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self._submitted: set[int] = set()
        self._futures = []

    def submit(self, entry: Entry) -> None:
        if entry.id in self._submitted:
            return
        self._submitted.add(entry.id)
        self._futures.append(self._pool.submit(self._upload, entry))

    def wait(self, deadline: float) -> bool:
        """True when every submitted upload has settled before `deadline`."""
        for future in self._futures:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                future.result(timeout=remaining)
            except TimeoutError:
                return False
        return True

    def close(self) -> None:
        self.stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self._results.close()

    def _record(self, **record: object) -> None:
        with self._lock:
            if not self._results.closed:
                self._results.write(json.dumps(record) + "\n")
                self._results.flush()

    def _upload(self, entry: Entry) -> None:
        local = self.folder / entry.source
        s = self.settings
        for attempt in range(1, s.max_attempts + 1):
            if self.stop.is_set():
                return
            try:
                with _progress_bar(entry, s.progress) as advance:
                    self.destination.put(entry, local, advance)
            except Exception as exc:  # every failure is retried, then recorded
                error = f"{entry.path}: {type(exc).__name__}: {first_line(exc)}"
                if attempt == s.max_attempts:
                    self._record(event="failed", id=entry.id, error=error)
                    return
                pause = min(s.max_backoff_s, s.backoff_s * 2 ** (attempt - 1))
                if self.stop.wait(pause * (0.5 + random.random() / 2)):
                    return
            else:
                self._record(event="verified", id=entry.id, size=entry.size)
                return


class _progress_bar:
    """A tqdm bar for one large file on an interactive terminal; a no-op otherwise."""

    def __init__(self, entry: Entry, enabled: bool) -> None:
        self._bar = None
        if enabled and entry.size >= PROGRESS_MIN_BYTES:
            from tqdm import tqdm

            self._bar = tqdm(
                total=entry.size, unit="B", unit_scale=True, desc=entry.path, leave=False
            )

    def __enter__(self) -> Callable[[int], None]:
        return self._bar.update if self._bar is not None else _ignore

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.close()


def _ignore(_: int) -> None:
    return None


def serve(folder: Path, settings: Settings) -> None:
    """The uploader process: follow the journal until stdin ends, then exit at once."""
    engine = Engine(folder, settings)
    wake = threading.Event()
    writer_gone = threading.Event()

    def watch_stdin() -> None:
        for _ in sys.stdin.buffer:
            wake.set()
        writer_gone.set()
        wake.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    if settings.warm_s3:  # importing boto3 takes a CPU-second: pay it while training runs
        threading.Thread(target=engine.destination.warm_up, daemon=True).start()
    journal = Journal()
    for record in read_records(folder / RESULTS):
        journal.apply(record)
    offset = 0
    while not writer_gone.is_set():
        records, offset = tail(folder / JOURNAL, offset)
        for record in records:
            journal.apply(record)
            if record.get("event") == "queued" and record["id"] not in journal.verified:
                engine.submit(journal.entries[record["id"]])
        wake.wait(0.5)
        wake.clear()
    os._exit(0)  # the writer is done or dead; `sync` finishes whatever is unverified


def main() -> None:
    folder, settings = Path(sys.argv[1]), Settings(**json.loads(sys.argv[2]))
    serve(folder, settings)


def settings_argument(settings: Settings) -> str:
    return json.dumps(asdict(settings))


if __name__ == "__main__":
    main()
