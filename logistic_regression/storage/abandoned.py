"""Spool folders whose process is gone: a run SIGKILLed or crashed left its folder (its
pid is not running, its lock is free), and `sync` still has to store its files and end
it honestly. The next run and `inspect` on the same store say so in one line."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

from logistic_regression.storage.spool import LOCK, Journal, process_alive, store_key


def abandoned(root: Path, tracking_uri: str) -> list[Journal]:
    """The folders of this tracking store whose writing process is gone (its pid is not
    running and the folder's lock is free) and that `sync` still has to handle."""
    from filelock import FileLock, Timeout

    if not root.is_dir():
        return []
    own = store_key(tracking_uri)
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        with suppress(OSError):
            journal = Journal.read(folder)
            if not journal.run_id or store_key(journal.tracking_uri) != own:
                continue
            if not journal.needs_sync or process_alive(journal.pid):
                continue
            lock = FileLock(str(folder / LOCK))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue  # a `sync`, or a process that resumed it, holds it
            lock.release()
            found.append(journal)
    return found


def abandoned_notice(root: Path, tracking_uri: str) -> str:
    """One line about `abandoned` folders, or "" when there are none."""
    found = abandoned(root, tracking_uri)
    if not found:
        return ""
    ids = ", ".join(j.run_id for j in found[:3]) + (", ..." if len(found) > 3 else "")
    return (
        f"warning: {len(found)} run(s) of this tracking store were left unsettled in the "
        f"spool by processes that are gone ({root}: {ids}): run "
        "`python -m logistic_regression sync` to store their files and end them honestly"
    )
