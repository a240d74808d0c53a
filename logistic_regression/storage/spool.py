"""The spool format, shared by the writer (`writer.py`) and the uploader (`uploader.py`).

A run's spool folder `<spool root>/<run id>/` holds:

- `journal.jsonl`, written only by the writer: one `run` line (run id, tracking URI in
  the absolute form `store_uri` gives, the writer's pid), then a `queued` line per file
  (an `Entry`), a `model` line per logged model to mark READY, `sealed` when the run's
  logging is over (`flush`: every file it meant to log is queued; a later `queued` line
  opens it again), `opened` (pid) when another process resumes the folder, `failure`
  (reason) when the run stopped because its tracking store failed (`sync` ends the run
  FAILED with it if it is still RUNNING), and `closed` when the writing process closed
  it itself (a SIGKILLed one never writes it);
- `results.jsonl`, written only by uploaders (the run's, or `sync`): `verified` and
  `failed` lines, and `recorded` once `sync` wrote the outcome on the run;
- `files/<id>/<name>`: copies of files logged by path (`ArtifactWriter.log_file`, copied
  when logged); `scratch/`: files the kit built in the spool;
- `.lock`: held by the writing process or by `sync` (a file lock).

Both logs are append-only, one JSON object per line, and survive a SIGKILL: at worst the
last line is cut, and readers skip it; the next process to append first cuts that
partial line away (`repair_tail`), so it never swallows a new line. `Journal.read`
replays both into one state, and counts complete journal lines it cannot read
(`damaged`): such a folder is not trusted by `sync`. Journals written before entries
named their run or model (no `run_id`/`model_id`) are still read; their entries upload
to S3 and local roots as before, and journals older than `sealed` lines count as sealed.

A folder may be removed only when it holds no file that is not stored: every entry
verified, and no file the journal does not account for (`unlogged_files`: what a run
wrote into the spool but never logged, because it failed or was killed first).

The default spool (`~/.cache/...`) is shared by every checkout of a user, so each
folder says which tracking store its run belongs to; `store_key` is the form in which
two tracking URIs are compared (absolute, password hidden). `abandoned.py` finds the
folders of one store whose process is gone (its pid dead, its lock free) and that
`sync` still has to handle.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import suppress
from dataclasses import dataclass, field, fields
from pathlib import Path

from logistic_regression.errors import StorageError
from logistic_regression.launcher import stat_fields
from logistic_regression.uris import redact, store_uri

JOURNAL = "journal.jsonl"
RESULTS = "results.jsonl"
LOCK = ".lock"
FILES = "files"
SCRATCH = "scratch"
SPOOL_VARIABLE = "LOGREG_SPOOL_DIR"
# The journal's format: 2 adds `sealed`, `opened` and `closed` lines (older journals
# have no version and count as sealed, as the kit of their time treated them).
JOURNAL_VERSION = 2
MB = 1024 * 1024
# Free space a run needs in the spool before it starts: the kit's own files for a run on
# a mid-sized table (report, model, predictions, environment lock) with room to spare.
# Writes of known size are checked again when they happen.
RUN_HEADROOM = 8 * MB
# Kept free beyond any write of known size: journal and results lines.
MARGIN = 256 * 1024


def spool_root(storage) -> Path:
    """`storage.spool_dir` (conf/ makes it $LOGREG_SPOOL_DIR when that is set), else
    ~/.cache/logistic-regression/spool: a place that outlives the run's working folder
    (`mlflow run <git-url>` uses a temp one)."""
    if storage.spool_dir:
        return Path(storage.spool_dir).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "logistic-regression" / "spool"


def human_size(size: float) -> str:
    """Bytes as a person reads them (binary units: what `df -h` shows)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def check_spool(root: Path, headroom: int = RUN_HEADROOM) -> None:
    """Refuse, before a run exists, a spool the run could not write to: a path that is a
    file, a read-only or forbidden folder, or a disk without `headroom` free."""
    where = f"the spool {root} (storage.spool_dir, else ${SPOOL_VARIABLE})"
    existing = next((p for p in (root, *root.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        which = "is a file" if existing == root else f"is under {existing}, a file"
        raise StorageError(f"{where} {which}; it must be a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(dir=root, prefix=".probe-")
        os.close(descriptor)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise StorageError(f"{where} cannot be written: {reason}") from None
    free = free_bytes(root)
    if free < headroom:
        raise StorageError(
            f"{where} has {human_size(free)} free; a run needs {human_size(headroom)} there "
            f"({human_size(headroom - free)} missing): free space, or point the spool at "
            "another disk"
        )


def store_key(uri: str) -> str:
    """What two tracking URIs are compared by: absolute, password hidden, no trailing /."""
    return redact(store_uri(uri)).rstrip("/") if uri else ""


def process_alive(pid: int) -> bool:
    """True while a process with this id runs (a zombie, killed but not yet reaped by its
    parent, counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = stat_fields(pid)
    return not fields or fields[0] not in ("Z", "X")


@dataclass(frozen=True)
class Entry:
    """One file to upload and the artifact it becomes.

    `source` is relative to the run's spool folder (a copy or a file built there; the
    uploader refuses anything else). `run_id`/`model_id` say whose artifact it is, so a
    root that only MLflow can write (`mlflow-artifacts:` through a tracking server) is
    written through MLflow's client for that run or logged model."""

    id: int
    source: str
    root: str  # artifact root URI (a run's, a logged model's, or an s3:// output)
    path: str  # artifact path under the root, with the file name
    size: int
    run_id: str = ""
    model_id: str = ""

    @property
    def destination(self) -> str:
        return f"{self.root.rstrip('/')}/{self.path}"

    @classmethod
    def from_record(cls, record: dict) -> Entry:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})


@dataclass
class Journal:
    """What one run's spool folder says: who wrote it, what was queued, what is verified."""

    run_id: str = ""
    tracking_uri: str = ""
    pid: int = 0  # the last process that opened the folder to write
    version: int = 0  # JOURNAL_VERSION of the writer; 0 for older kits
    entries: dict[int, Entry] = field(default_factory=dict)
    verified: set[int] = field(default_factory=set)
    errors: dict[int, str] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    sealed: bool = False  # every file the run meant to log is queued (its logging is over)
    closed: bool = False  # the writing process closed the folder itself
    recorded: bool = False  # `sync` wrote the outcome on the run
    failure: str = ""  # why the run stopped, when its tracking store failed
    damaged: int = 0  # complete journal lines that could not be read

    @property
    def pending(self) -> list[Entry]:
        return [e for i, e in sorted(self.entries.items()) if i not in self.verified]

    @property
    def needs_sync(self) -> bool:
        """Files wait to be stored, or the process died (or its store failed) before it
        could end the run."""
        return bool(self.pending) or (not self.recorded and (bool(self.failure) or not self.closed))

    def errors_of(self, entries: list[Entry]) -> list[str]:
        """The distinct last errors recorded for these entries."""
        return sorted({self.errors[e.id] for e in entries if e.id in self.errors})

    def apply(self, record: dict) -> None:
        event = record.get("event")
        if event == "run":
            self.run_id, self.tracking_uri = record["run_id"], record["tracking_uri"]
            self.pid, self.version = int(record.get("pid") or 0), int(record.get("version", 0))
            self.sealed = not self.version  # older kits wrote no `sealed` line
            self.closed = False
        elif event == "opened":
            self.pid, self.closed = int(record.get("pid") or 0), False
        elif event == "sealed":
            self.sealed = True
        elif event == "closed":
            self.closed = True
        elif event == "recorded":
            self.recorded = True
        elif event == "failure":
            self.failure = str(record["reason"])
        elif event == "queued":
            self.entries[record["id"]] = Entry.from_record(record)
            if self.version:  # logging goes on after a flush: not sealed until the next
                self.sealed = False
        elif event == "verified":
            self.verified.add(record["id"])
            self.errors.pop(record["id"], None)
        elif event == "failed":
            self.errors[record["id"]] = record["error"]
        elif event == "model":
            self.models.append(record["model_id"])

    @classmethod
    def read(cls, folder: Path) -> Journal:
        """Both logs replayed; a complete journal line that cannot be read is counted in
        `damaged` (a cut last line, left by a crash, is not: it is simply not there)."""
        journal = cls()
        for name in (JOURNAL, RESULTS):
            lines, bad = _complete_lines(folder / name)
            for record in lines:
                try:
                    journal.apply(record)
                except (KeyError, TypeError, ValueError, AttributeError):
                    bad += 1
            if name == JOURNAL:
                journal.damaged = bad
        return journal


def _complete_lines(path: Path) -> tuple[list[dict], int]:
    """The JSON objects of a log's complete lines, and how many could not be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    records, bad = [], 0
    for line in data[: data.rfind(b"\n") + 1].splitlines():
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            bad += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            bad += 1
    return records, bad


def repair_tail(path: Path) -> None:
    """Cut a log's last line if a crash left it incomplete, so the next line appended is
    not glued to it (only the process holding the folder's lock may call this)."""
    try:
        with path.open("r+b") as handle:
            data = handle.read()
            if data and not data.endswith(b"\n"):
                handle.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        return


def append_record(path: Path, **record: object) -> None:
    """One line appended to a log (by the process holding the folder's lock)."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def unlogged_files(folder: Path, journal: Journal) -> list[Path]:
    """Files in the folder the journal does not account for: what a run wrote into the
    spool (or began to copy there) but never logged, because it ended first."""
    sources = {e.source for e in journal.entries.values()}
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink()):
        relative = path.relative_to(folder)
        if relative.as_posix() in (JOURNAL, RESULTS, LOCK) or relative.as_posix() in sources:
            continue
        parts = relative.parts
        if parts[0] == FILES and len(parts) > 2 and parts[1].isdigit():
            if int(parts[1]) in journal.entries:
                continue  # the copy of a logged file
        found.append(path)
    return found


def tail(path: Path, offset: int) -> tuple[list[dict], int]:
    """New complete lines after `offset`, and the offset after the last complete one; a
    line cut by a crash is skipped."""
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
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(record, dict):
            records.append(record)
    return records, offset + end


def remove_folder(folder: Path) -> None:
    """Remove a run's spool folder, the lock file last. Callers check first that it
    holds nothing unstored (no pending entry, no `unlogged_files`)."""
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
