"""The tracking store, checked before anything is recorded: there, answering, not locked.

Left alone, MLflow retries a tracking server that does not answer for minutes (HTTP
retries with backoff) and waits on a SQLite file another process holds locked for about
90 s (a 20 s busy timeout per statement, retried), and either ends in an error that does
not say what to check. `check` asks once, within `tracking.timeout_s`:

- `sqlite:///` files: opened with the standard library's `sqlite3` with that timeout
  (before MLflow touches them), their header read and a write lock taken and released;
  a missing file is fine (MLflow creates it) when its folder can be made. MLflow makes
  a new file's tables (a chain of migrations) in whichever process opens it first, with
  nothing to stop two doing it at once: four first runs started together all failed and
  left a store no later run could open. `check` therefore opens the store holding an
  exclusive lock on the file's folder (`one_creator`), so one process makes the tables
  and the others wait and then find them made; a store whose tables are incomplete (a
  creation or upgrade that was stopped) is one line saying what to do.
- `http(s)://` servers, and every other store: one MLflow call (`search_experiments`)
  with MLflow's HTTP retries off and its request timeout set to the bound.

Any problem is a StorageError: one line naming the store (password hidden) and what to
check. A server with authentication that refuses the credentials (missing or wrong:
MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN) says so,
before any run exists or anything is spooled.

The bound covers servers and SQLite files; a database server (PostgreSQL, MySQL) is
asked too, but MLflow's own connection retries apply to it.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from alembic.util import CommandError
from mlflow.environment_variables import MLFLOW_ALLOW_FILE_STORE
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy.exc import SQLAlchemyError

from logistic_regression.errors import StorageError, first_line
from logistic_regression.tracking.runs import bounded_store
from logistic_regression.uris import redact

# Where MLflow keeps a local store's artifacts by default (the embedded default: ./mlruns).
DEFAULT_ARTIFACT_FOLDER = "mlruns"

WHERE = "MLFLOW_TRACKING_URI, else tracking.uri"


# URI schemes MLflow has a tracking store for (a database's `dialect+driver` counts as
# its dialect); a plain path, or `file:`, is MLflow's file store.
SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "file")
SCHEMES_ELSEWHERE = ("databricks", "databricks-uc", "uc")
USE_INSTEAD = (
    "use sqlite:///mlflow.db (the embedded default), a tracking server's http(s):// URL "
    "or a database URI (postgresql://, mysql://, mssql://)"
)


def check_kind(uri: str) -> None:
    """Refuse, before any connection, a URI that names no tracking store MLflow can use
    here; MLflow's own answers are paragraphs that end in 'See ...'."""
    if not uri:
        raise StorageError(f"no tracking store: tracking.uri is empty ({WHERE}); {USE_INSTEAD}")
    scheme = urlsplit(uri).scheme.split("+", 1)[0].lower()
    if len(scheme) > 1 and scheme not in SCHEMES + SCHEMES_ELSEWHERE:
        raise StorageError(
            f"tracking store {redact(uri)}: {scheme}:// is not a kind of tracking store "
            f"MLflow knows ({WHERE}); {USE_INSTEAD}"
        )
    if scheme in ("", "file") or len(scheme) == 1:  # a path (a drive letter on Windows)
        if not MLFLOW_ALLOW_FILE_STORE.get():
            raise StorageError(
                f"tracking store {redact(uri)} is a file store, which MLflow 3 only opens "
                "with MLFLOW_ALLOW_FILE_STORE=true (it is in maintenance mode; see "
                f"docs/results.md); or {USE_INSTEAD}"
            )


def check(uri: str, timeout_s: float) -> None:
    """Refuse a tracking store the kit cannot use now, within `timeout_s` seconds."""
    check_kind(uri)
    path = sqlite_path(uri)
    if path is None:
        _ask(uri, timeout_s, lambda exc: _unanswered(uri, exc, timeout_s))
        return
    check_sqlite(uri, path, timeout_s)
    with one_creator(uri, path):
        _ask(uri, timeout_s, lambda exc: StorageError(_incomplete(uri, path, exc)))


def _ask(uri: str, timeout_s: float, failed: Callable[[Exception], StorageError]) -> None:
    """One call to the store; MLflow opens it (and makes a new SQLite file's tables).
    A failure is `failed(exc)`: a server that did not answer, a SQLite file whose tables
    could not be made."""
    try:
        with bounded_store(timeout_s):
            MlflowClient(uri).search_experiments(max_results=1)
    except MlflowException as exc:
        if exc.error_code == "UNAUTHENTICATED":
            raise StorageError(unauthenticated(uri)) from None
        raise failed(exc) from None
    except OSError as exc:
        raise _unanswered(uri, exc, timeout_s) from None
    except (SQLAlchemyError, CommandError) as exc:
        raise failed(exc) from None


# How long a process waits for another one making a new SQLite store's tables (a few
# seconds on an idle machine); the lock is the kernel's, so it is free again at once if
# that process dies.
CREATION_WAIT_S = 120.0


@contextmanager
def one_creator(uri: str, path: Path, wait_s: float = CREATION_WAIT_S) -> Iterator[None]:
    """Hold an exclusive lock on the folder of a SQLite store while MLflow opens it.

    A lock on the folder (not a file beside the store) leaves nothing behind in it."""
    folder = os.open(path.parent if str(path.parent) else ".", os.O_RDONLY)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StorageError(
                        f"tracking store {redact(uri)}: another process has been opening "
                        f"it for {wait_s:g} s (a new store's tables are made by one process "
                        "at a time); check for a stuck run and try again"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(folder)  # releases the lock


def _incomplete(uri: str, path: Path, exc: BaseException) -> str:
    """A SQLite store MLflow could not open, in one line: its tables are incomplete."""
    reason = first_line(exc)
    if "out-of-date database schema" in reason:  # made by an older MLflow
        return f"tracking store {redact(uri)} cannot be used: {redact(reason)}"
    reason = reason if len(reason) <= 160 else reason[:157] + "..."
    return (
        f"tracking store {redact(uri)} has incomplete tables (making or upgrading them "
        f"was stopped partway: {redact(reason)}); if it holds no runs you need, move it "
        f"away (mv {path} {path}.broken) and run again, otherwise restore a backup or try "
        f"`mlflow db upgrade {redact(uri)}`"
    )


CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


def unauthenticated(uri: str) -> str:
    """Why a server answered 401: no credentials given, or ones it does not accept."""
    given = [name for name in CREDENTIALS if os.environ.get(name)]
    if not given:
        return (
            f"the tracking server {redact(uri)} requires a login and none was given; set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to a user of that server"
        )
    return (
        f"the tracking server {redact(uri)} refused the credentials in {', '.join(given)} "
        "(401 UNAUTHENTICATED); check the user name and password (an admin creates users "
        "and can reset a password)"
    )


def _unanswered(uri: str, exc: BaseException, timeout_s: float) -> StorageError:
    return StorageError(
        f"tracking store {redact(uri)} cannot be used: {redact(_reason(exc, timeout_s))}; "
        f"check that it is running and reachable at that address ({WHERE}), "
        f"or raise tracking.timeout_s (now {timeout_s:g} s)"
    )


def sqlite_path(uri: str) -> Path | None:
    """The file of a `sqlite:///` URI; None for other stores and in-memory databases."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def check_sqlite(uri: str, path: Path, timeout_s: float) -> None:
    shown = redact(uri)
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)  # as MLflow does before creating it
        except OSError as exc:
            raise StorageError(
                f"tracking store {shown} cannot be created: {exc.strerror or first_line(exc)} "
                f"({exc.filename or path.parent}); check the path ({WHERE})"
            ) from None
        return
    try:
        connection = sqlite3.connect(
            path.resolve().as_uri() + "?mode=rw", uri=True, timeout=timeout_s, isolation_level=None
        )
        try:
            connection.execute("PRAGMA schema_version")  # reads the header
            connection.execute("BEGIN IMMEDIATE")  # the write lock a run needs
            # A write, rolled back: a file on a read-only disk (or in a folder where its
            # journal cannot be made) takes the lock but refuses the first real write,
            # which MLflow would meet only mid-run.
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            connection.execute(f"PRAGMA user_version = {int(version)}")
            connection.execute("ROLLBACK")
        finally:
            connection.close()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise StorageError(
                f"tracking store {shown} is locked: another process held it for "
                f"{timeout_s:g} s (tracking.timeout_s); check for a program that keeps it "
                "open in a transaction (a sqlite3 shell, a stuck run), or raise tracking.timeout_s"
            ) from None
        raise _unusable(shown, exc) from None
    except sqlite3.Error as exc:
        raise _unusable(shown, exc) from None


def _unusable(shown: str, exc: Exception) -> StorageError:
    return StorageError(
        f"tracking store {shown} cannot be used: {first_line(exc)}; check that the file is "
        f"an MLflow SQLite store that you can write ({WHERE})"
    )


def _reason(exc: BaseException, timeout_s: float) -> str:
    """What went wrong, in a few words rather than MLflow's nested request errors."""
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused (no server listens there)"
    if "timed out" in text.lower() or "timeout" in text.lower():
        return f"no answer within {timeout_s:g} s"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host name"
    line = first_line(exc)
    return line if len(line) <= 300 else line[:297] + "..."


def check_store_layout(uri: str) -> None:
    """Refuse to mix MLflow's two local layouts in one folder: a file store (`mlruns/<id>/
    meta.yaml`, what `MLFLOW_TRACKING_URI=./folder` makes) and the artifacts of a SQLite
    store (the embedded default writes them to ./mlruns). Mixed, MLflow reports
    "Malformed experiment" and refuses later runs in that folder."""
    scheme = uri.split(":", 1)[0] if "://" in uri or uri.startswith("file:") else ""
    if scheme == "sqlite":
        folder = Path(DEFAULT_ARTIFACT_FOLDER)
        if folder.exists() and not folder.is_dir():
            raise StorageError(
                f"./{DEFAULT_ARTIFACT_FOLDER} here is a file, where the SQLite store keeps its "
                "artifacts (MLflow's default artifact root, a folder); move or rename it"
            )
        if _is_file_store(folder):
            raise StorageError(
                f"./{DEFAULT_ARTIFACT_FOLDER} here is an MLflow file store, where the SQLite "
                "store would write its artifacts; move it (or use it: "
                f"MLFLOW_TRACKING_URI=./{DEFAULT_ARTIFACT_FOLDER})"
            )
    elif scheme in ("", "file"):
        folder = Path(uri.removeprefix("file://").removeprefix("file:"))
        if _holds_sqlite_artifacts(folder):
            raise StorageError(
                f"{redact(uri)} holds the artifacts of a SQLite store (mlflow.db), not a file "
                "store; give the file store a folder of its own, e.g. "
                "MLFLOW_TRACKING_URI=./mlruns-files"
            )


def _is_file_store(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("*/meta.yaml"))


def _holds_sqlite_artifacts(folder: Path) -> bool:
    """Experiment folders without the meta.yaml a file store writes for each."""
    if not folder.is_dir():
        return False
    experiments = [p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()]
    return any(not (p / "meta.yaml").exists() for p in experiments)
