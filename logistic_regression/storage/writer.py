"""Asynchronous artifact writing: logging returns at once, uploads run in another
process, the run's end waits for them.

`ArtifactWriter` appends each file it is given to the run's journal (`spool.py`) and
wakes the uploader process (`uploader.py`), which uploads, retries, verifies and records
each outcome; the training thread never touches the network. `flush` waits, at most
`storage.flush_timeout_s`, until every file is verified; files that are not stay in the
spool with the journal, and `sync` uploads them later.

What is stored for a file handed to `log_file` depends on `storage.snapshot`:

- `reference` (default): nothing is copied. The file's inode, size, mtime and ctime are
  recorded when it is logged and the uploader reads it from its own path. If it changes
  before its upload is verified, the uploader copies it into the spool as it is then and
  uploads that copy: the store holds one whole version of the file (the logged one, or a
  later one), never a mix. A file deleted before its upload was verified is never counted
  as stored: the run ends FAILED with it listed in `kit.artifacts_pending`, and the error
  says it was deleted (`sync` cannot bring it back: log with `copy` if files may vanish).
- `copy`: the bytes are copied into the spool now (a kernel copy), so later changes or
  deletion never reach the store, at the cost of one copy in the training thread.

The kit's own artifacts (report, model, predictions) are built in the spool (`scratch`)
and queued as they are with `adopt_folder`: no copy, no check, they are the spool's.

The journal (`journal.jsonl`, append-only) survives a SIGKILL: at worst its last line is
cut and ignored. A file lock per run folder makes `sync` safe to run twice or
concurrently, and tells it whether the writing process is still alive.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path

from filelock import FileLock

from logistic_regression.background import child_environment
from logistic_regression.config import StorageConfig
from logistic_regression.storage.spool import (
    FILES,
    JOURNAL,
    LOCK,
    RESULTS,
    Entry,
    Journal,
    file_state,
    remove_folder,
    spool_root,
    tail,
)
from logistic_regression.storage.uploader import QUIET_S, Settings, settings_argument

# Wake the uploader at most this often while files are logged in a burst: it reads the
# journal only after QUIET_S without a wake-up, so an entry written within this interval
# of the previous wake-up is read with it (and it polls the journal twice a second anyway).
WAKE_EVERY_S = QUIET_S / 4


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
        self._append_lock = threading.Lock()
        if not self.journal.run_id:
            self.journal.run_id, self.journal.tracking_uri = run_id, tracking_uri
            self._append(event="run", run_id=run_id, tracking_uri=tracking_uri, pid=os.getpid())
        settings = Settings.from_storage(storage, tracking_uri, warm_s3)
        self._uploader = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "logistic_regression.storage.uploader",
                str(self.folder),
                settings_argument(settings),
            ],
            stdin=subprocess.PIPE,
            env=child_environment(),
            # Its own process group: Ctrl-C and a scheduler's SIGTERM to the run's group
            # stop the run, which then ends the uploader by closing its stdin (a signal
            # while it starts up would kill it with a traceback instead).
            process_group=0,
        )
        assert self._uploader.stdin is not None  # stdin=PIPE
        self._wake = self._uploader.stdin  # a new line: "look at the journal again"
        self._next_id = max(self.journal.entries, default=-1) + 1
        self.unspooled: list[str] = []
        self._woken = 0.0

    # -- what the training thread calls: none of it touches the network --

    def log_file(self, path: Path, root: str, artifact_path: str = "", model_id: str = "") -> None:
        """Queue `path` as `<root>/<artifact_path>/<name>`, an artifact of the run (or of
        the logged model `model_id`), snapshotted as `storage.snapshot` says (see the
        module docstring)."""
        path = Path(os.path.abspath(path))
        state = file_state(path)  # a missing file fails here, in the caller
        entry_id = self._take_id()
        target = _join(artifact_path, path.name)
        if self.storage.snapshot != "copy":
            self._queue(Entry(entry_id, str(path), root, target, state[1], "", model_id, state))
            return
        copy = self.folder / FILES / str(entry_id) / path.name
        try:
            copy.parent.mkdir(parents=True)
            shutil.copyfile(path, copy)  # sendfile: no Python buffer
        except OSError as exc:  # the spool's disk is full or gone: say so at flush
            self.unspooled.append(f"{target} (not spooled: {exc.strerror or exc})")
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
        path = self.folder / "scratch" / name
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

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

    def finalize_model_when_stored(self, model_id: str) -> None:
        """Mark a logged model READY once every file is verified (here, or by `sync`)."""
        self.journal.models.append(model_id)
        self._append(event="model", model_id=model_id)

    # -- the end of the run --

    def flush(self, timeout: float | None = None) -> FlushResult:
        """Wait until every queued file is verified (or failed for good), or the bound
        passes; never longer."""
        bound = self.storage.flush_timeout_s if timeout is None else timeout
        started = time.monotonic()
        deadline = started + bound
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
        with suppress(OSError):
            self._wake.close()  # the uploader exits at once
        with suppress(subprocess.TimeoutExpired):
            self._uploader.wait(timeout=10)
        if self._uploader.poll() is None:
            self._uploader.kill()
            self._uploader.wait()
        self._journal_file.close()
        self._read_results()
        if remove_if_complete and not self.journal.pending:
            remove_folder(self.folder)
        self._lock.release()

    def __enter__(self) -> ArtifactWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals --

    def _append(self, **record: object) -> None:
        with self._append_lock:
            self._journal_file.write(json.dumps(record) + "\n")
            self._journal_file.flush()

    def _take_id(self) -> int:
        with self._append_lock:
            entry_id = self._next_id
            self._next_id += 1
        return entry_id

    def _queue(self, entry: Entry) -> None:
        if not entry.model_id:
            entry = replace(entry, run_id=self.journal.run_id)
        self.journal.entries[entry.id] = entry
        self._append(event="queued", **vars(entry))
        now = time.monotonic()
        if now - self._woken < WAKE_EVERY_S:
            return  # a wake-up this recent is still pending: the uploader reads this too
        self._woken = now
        with suppress(OSError):  # wake the uploader; if it is gone, `sync` will do it
            self._wake.write(b"\n")
            self._wake.flush()

    def _read_results(self) -> None:
        records, self._results_offset = tail(self.folder / RESULTS, self._results_offset)
        for record in records:
            self.journal.apply(record)
            if record.get("event") == "failed":
                self._failed_now.add(record["id"])


def _join(folder: str, name: str) -> str:
    return f"{folder.strip('/')}/{name}" if folder.strip("/") else name
