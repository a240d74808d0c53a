"""The upload engine: a pool of threads that uploads every queued file, retries with
backoff, verifies each object and appends the outcome to `results.jsonl`.

Where it runs is `uploads.py`'s choice: for S3 and a tracking server, in an uploader
process of its own (`python -m logistic_regression.storage.uploader FOLDER SETTINGS`,
`serve`), so uploads never take the GIL from training; it follows the run's
`journal.jsonl` (a new line on its stdin says "look again"), and the end of stdin means
the writer is done or dead: it exits at once, and whatever is unverified is `sync`'s
job. For local folders only, in threads of the run's own process. `sync` runs the same
`Engine` in its own process.

Destinations: `s3://` roots through `s3.Transfers` (one TransferManager, checksums
verified as described in `s3.py`); local roots (a path or `file://`) by copying, verified
by size; any other MLflow artifact root (`mlflow-artifacts:` through a tracking server)
through MLflow's public client, `MlflowClient.log_artifact` for the entry's run or
`log_model_artifact` for its logged model, verified by listing the stored size.

Every source is a file of the run's own spool folder (the writer builds or copies each
one there), named relative to it: a journal entry naming anything else (an absolute
path, `..`, a link leading out) is refused, not uploaded (`spool_source`), so a planted
spool folder cannot make `sync` read and upload someone's file.
"""

from __future__ import annotations

import json
import os
import posixpath
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from logistic_regression.errors import first_line
from logistic_regression.storage.beneath import copy_beneath, parts
from logistic_regression.storage.spool import (
    JOURNAL,
    RESULTS,
    Entry,
    Journal,
    repair_tail,
    tail,
)
from logistic_regression.uris import printable, redact, reveal

MB = 1024 * 1024
PROGRESS_MIN_BYTES = 8 * MB
# After a wake-up, wait for QUIET_S without one (at most BURST_S) before reading the
# journal: a burst of logged files is then taken at once, not file by file, and the
# uploader does not compete for the CPU with the training thread while it logs them.
QUIET_S = 0.02
BURST_S = 0.2


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

    def _transfers(self):
        with self._lock:
            if self._s3 is None:
                from logistic_regression.storage.s3 import Transfers

                s = self.settings
                self._s3 = Transfers(
                    budget=s.workers,
                    verifiers=s.workers,
                    threshold=s.multipart_threshold_mb * MB,
                    chunk=s.multipart_chunksize_mb * MB,
                )
            return self._s3

    def warm_up(self) -> None:
        self._transfers()

    def close(self) -> None:
        if self._s3 is not None:
            self._s3.close()

    def put(self, entry: Entry, local: Path, progress: Callable[[int], None]) -> None:
        if entry.root.startswith("s3://"):
            self._transfers().upload(local, entry.destination, entry.size, progress)
        elif (folder := local_root(entry.root)) is not None:
            target = copy_beneath(local, folder, entry.path)  # never through a planted link
            if target.stat().st_size != entry.size:
                raise OSError(f"verify: {target} does not hold {entry.size} bytes")
            progress(entry.size)
        else:
            self._put_mlflow(entry, local)
            progress(entry.size)

    def _put_mlflow(self, entry: Entry, local: Path) -> None:
        from mlflow.tracking import MlflowClient

        if local.name != posixpath.basename(entry.path):
            raise OSError(f"{local.name} cannot be stored as {entry.path} through MLflow")
        # The journal holds the URI redacted; connect with the real one (MLFLOW_TRACKING_URI).
        client = MlflowClient(tracking_uri=reveal(self.settings.tracking_uri) or None)
        folder = posixpath.dirname(entry.path) or None
        if entry.model_id:
            client.log_model_artifact(entry.model_id, str(local), folder)
            listed = client.list_logged_model_artifacts(entry.model_id, folder)
        elif entry.run_id:
            client.log_artifact(entry.run_id, str(local), folder)
            listed = client.list_artifacts(entry.run_id, folder)
        else:
            raise OSError(
                f"{entry.root}: the spool entry names no run or logged model (written by an "
                "older kit), so MLflow cannot store it"
            )
        sizes = {info.path: info.file_size for info in listed}
        if sizes.get(entry.path) != entry.size:
            raise OSError(f"verify: {entry.path} is not stored with {entry.size} bytes")


class Engine:
    """A pool that uploads entries and appends each outcome to `results.jsonl`."""

    def __init__(self, folder: Path, settings: Settings) -> None:
        self.folder = folder
        self.settings = settings
        self.destination = Destination(settings)
        self.stop = threading.Event()
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="upload")
        repair_tail(folder / RESULTS)
        self._results = (folder / RESULTS).open("a", encoding="utf-8")
        self.results_error = ""  # why results.jsonl took no more lines (a full disk)
        self._lock = threading.Lock()
        self._submitted: set[int] = set()
        self._futures: list[Future[None]] = []

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
            except Exception:  # an upload that raised is simply not verified
                continue
        return True

    def close(self, wait: bool = False) -> None:
        """Stop: queued uploads are cancelled; with `wait`, those in flight finish first."""
        self.stop.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)
        self.destination.close()
        with self._lock, suppress(OSError):
            self._results.close()

    def _record(self, **record: object) -> None:
        """Append one outcome. If results.jsonl cannot be written (a full disk), nothing
        more is uploaded: an upload that cannot be recorded as verified is not verified."""
        if isinstance(record.get("error"), str):  # errors are stored and shown: redacted
            record["error"] = redact(str(record["error"]))
        with self._lock:
            if self._results.closed or self.results_error:
                return
            try:
                self._results.write(json.dumps(record) + "\n")
                self._results.flush()
            except OSError as exc:
                self.results_error = f"{RESULTS}: {exc.strerror or exc}"
                self.stop.set()

    def _upload(self, entry: Entry) -> None:
        s = self.settings
        attempt = 1
        try:
            source = spool_source(self.folder, entry.source)
        except OSError as exc:  # not the spool's file: refused, never retried
            self._record(event="failed", id=entry.id, error=f"{entry.path}: {exc}")
            return
        while not self.stop.is_set():
            error = self._put(entry, source)
            if error is None:
                self._record(event="verified", id=entry.id, size=entry.size)
                return
            if attempt >= s.max_attempts:
                self._record(event="failed", id=entry.id, error=error)
                return
            pause = min(s.max_backoff_s, s.backoff_s * 2 ** (attempt - 1))
            attempt += 1
            if self.stop.wait(pause * (0.5 + random.random() / 2)):
                return

    def _put(self, entry: Entry, source: Path) -> str | None:
        """Upload and verify once; the error line, or None when the object is verified."""
        try:
            with _progress_bar(entry, self.settings.progress) as advance:
                self.destination.put(entry, source, advance)
        except Exception as exc:  # every failure is retried, then recorded
            return f"{entry.path}: {type(exc).__name__}: {first_line(exc)}"
        return None


def spool_source(folder: Path, source: str) -> Path:
    """The file a journal entry names, which must be a regular file of its spool folder:
    a relative path without `..` that no link leads out of."""
    parts(source)  # refuses an absolute path or `..`
    path = folder / source
    resolved = path.resolve()
    if path.is_symlink() or folder.resolve() not in resolved.parents:
        raise OSError(f"{source!r} is not a file of its spool folder; not uploaded")
    return resolved


class _progress_bar:
    """A tqdm bar for one large file on an interactive terminal; a no-op otherwise."""

    def __init__(self, entry: Entry, enabled: bool) -> None:
        self._bar = None
        if enabled and entry.size >= PROGRESS_MIN_BYTES:
            from tqdm import tqdm

            # The bar redraws itself with carriage returns, which the kit's stderr shows
            # escaped: it writes to the terminal itself, its one piece of text made safe.
            terminal = getattr(sys.stderr, "wrapped", sys.stderr)
            self._bar = tqdm(
                total=entry.size,
                unit="B",
                unit_scale=True,
                desc=printable(redact(entry.path)),
                leave=False,
                file=terminal,
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
    for record in tail(folder / RESULTS, 0)[0]:
        journal.apply(record)
    offset = 0
    while not writer_gone.is_set():
        if engine.results_error:  # nothing can be recorded as verified: the writer's
            os._exit(3)  # flush sees this process gone and leaves the rest to `sync`
        records, offset = tail(folder / JOURNAL, offset)
        for record in records:
            try:
                journal.apply(record)
            except (KeyError, TypeError, ValueError, AttributeError):
                continue  # a damaged line: `sync` reports the folder
            if record.get("event") == "queued" and record["id"] not in journal.verified:
                engine.submit(journal.entries[record["id"]])
        wake.wait(0.5)
        quiet_since = time.monotonic()
        while wake.is_set() and time.monotonic() - quiet_since < BURST_S:
            wake.clear()  # the writer is logging a burst of files: take them in one go
            wake.wait(QUIET_S)
    os._exit(0)  # the writer is done or dead; `sync` finishes whatever is unverified


def main() -> None:
    # The writer's process ends this one by closing stdin (what is not verified stays in
    # the spool); it runs in its own process group, and ignores Ctrl-C and a closed
    # terminal even when signalled directly, rather than printing a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    folder, settings = Path(sys.argv[1]), Settings(**json.loads(sys.argv[2]))
    try:
        serve(folder, settings)
    except FileNotFoundError:
        if folder.is_dir():
            raise
        # The writer removed its folder while this process was still starting (a run
        # stopped before it logged a file): there is nothing to upload, and nothing to say.
        os._exit(0)


def settings_argument(settings: Settings) -> str:
    return json.dumps(asdict(settings))


if __name__ == "__main__":
    main()
