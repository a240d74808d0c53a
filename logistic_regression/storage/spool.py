"""The spool format, shared by the writer (`writer.py`) and the uploader (`uploader.py`).

A run's spool folder `<spool root>/<run id>/` holds:

- `journal.jsonl`, written only by the writer: one `run` line (run id, tracking URI,
  and the writer's pid for a person reading the folder), then a `queued` line per file
  (an `Entry`) and a `model` line per logged model to mark READY;
- `results.jsonl`, written only by uploaders (the run's, or `sync`): `verified`,
  `failed` and `resnapshot` lines;
- `files/<id>/<name>`: copies of logged files (`storage.snapshot=copy`, or a file that
  changed before its upload finished); `scratch/`: files the kit built in the spool;
- `.lock`: held by the writing process or by `sync` (a file lock).

Both logs are append-only, one JSON object per line, and survive a SIGKILL: at worst the
last line is cut, and readers skip it. `Journal.read` replays both into one state.
Journals written before entries named their run or model (no `run_id`/`model_id`) are
still read; their entries upload to S3 and local roots as before.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import suppress
from dataclasses import dataclass, field, fields
from pathlib import Path

JOURNAL = "journal.jsonl"
RESULTS = "results.jsonl"
LOCK = ".lock"
FILES = "files"
SPOOL_VARIABLE = "LOGREG_SPOOL_DIR"


def spool_root(storage) -> Path:
    """`storage.spool_dir`, else $LOGREG_SPOOL_DIR, else ~/.cache/logistic-regression/spool:
    a place that outlives the run's working folder (`mlflow run <git-url>` uses a temp one)."""
    configured = storage.spool_dir or os.environ.get(SPOOL_VARIABLE)
    if configured:
        return Path(configured).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "logistic-regression" / "spool"


def file_state(path: Path) -> list[int]:
    """What says a file is unchanged: inode, size, mtime and ctime (nanoseconds). Any
    write, truncation, replacement (rename over it) or metadata change moves one of them."""
    st = path.stat()
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


@dataclass(frozen=True)
class Entry:
    """One file to upload and the artifact it becomes.

    `source` is relative to the run's spool folder (a copy or a file built there), or an
    absolute path to the user's own file (`storage.snapshot=reference`); then `state` is
    that file's `file_state` when it was logged, and the uploader uploads it only while
    it still matches. `run_id`/`model_id` say whose artifact it is, so a root that only
    MLflow can write (`mlflow-artifacts:` through a tracking server) is written through
    MLflow's client for that run or logged model."""

    id: int
    source: str
    root: str  # artifact root URI (a run's, a logged model's, or an s3:// output)
    path: str  # artifact path under the root, with the file name
    size: int
    run_id: str = ""
    model_id: str = ""
    state: list[int] | None = None

    @property
    def destination(self) -> str:
        return f"{self.root.rstrip('/')}/{self.path}"

    @property
    def referenced(self) -> bool:
        """True when the source is the user's file, not a copy the spool owns."""
        return self.state is not None

    @classmethod
    def from_record(cls, record: dict) -> Entry:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})


@dataclass
class Journal:
    """What one run's spool folder says: who wrote it, what was queued, what is verified."""

    run_id: str = ""
    tracking_uri: str = ""
    entries: dict[int, Entry] = field(default_factory=dict)
    verified: set[int] = field(default_factory=set)
    errors: dict[int, str] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    resnapshots: dict[int, dict] = field(default_factory=dict)

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
        elif event == "queued":
            self.entries[record["id"]] = Entry.from_record(record)
            self._resnapshot(record["id"])
        elif event == "resnapshot":  # the results may be read before the journal
            self.resnapshots[record["id"]] = record
            self._resnapshot(record["id"])
        elif event == "verified":
            self.verified.add(record["id"])
            self.errors.pop(record["id"], None)
        elif event == "failed":
            self.errors[record["id"]] = record["error"]
        elif event == "model":
            self.models.append(record["model_id"])

    def _resnapshot(self, entry_id: int) -> None:
        """A file that changed before its upload finished is uploaded from its copy."""
        if entry_id in self.entries and entry_id in self.resnapshots:
            old, copy = self.entries[entry_id], self.resnapshots[entry_id]
            self.entries[entry_id] = Entry(
                old.id, copy["source"], old.root, old.path, copy["size"], old.run_id, old.model_id
            )

    @classmethod
    def read(cls, folder: Path) -> Journal:
        journal = cls()
        for name in (JOURNAL, RESULTS):
            for record in tail(folder / name, 0)[0]:
                journal.apply(record)
        return journal


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
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records, offset + end


def remove_folder(folder: Path) -> None:
    """Remove a run's spool folder, the lock file last."""
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
