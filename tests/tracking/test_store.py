"""Bounded waits on the tracking store: a server nobody listens on, a server that never
answers and a SQLite file another connection holds locked are each refused within
`tracking.timeout_s`, in one line that names the store (password hidden) and what to
check, before a run exists. Real sockets and a real SQLite lock; `returns_within` fails
a test that would otherwise hang on MLflow's own retries (minutes)."""

from __future__ import annotations

import sqlite3

import pytest
from conftest import returns_within
from mlflow.tracking import MlflowClient

from logistic_regression import __main__ as kit
from logistic_regression import train
from logistic_regression.errors import StorageError
from logistic_regression.tracking import store

BOUND = 60  # generous: what matters is that the call returns at all


@pytest.fixture
def held_lock(isolated_mlflow):
    """Another connection holds the test's SQLite store with BEGIN EXCLUSIVE."""
    holder = sqlite3.connect(isolated_mlflow.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    yield isolated_mlflow
    holder.execute("ROLLBACK")
    holder.close()


def refusal(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "unexpected" not in err and "Traceback" not in err
    return err


def test_a_server_nobody_listens_on_is_refused_at_once_with_the_store_redacted(
    closed_port, monkeypatch, capsys, isolated_mlflow
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://alice:hunter2@127.0.0.1:{closed_port}")
    capsys.readouterr()
    assert returns_within(BOUND, train.main, []) == 2
    err = refusal(capsys)
    assert f"tracking store http://***@127.0.0.1:{closed_port} " in err
    assert "hunter2" not in err
    assert "connection refused" in err and "tracking.timeout_s" in err


def test_a_server_that_never_answers_is_refused_after_the_users_bound(
    silent_server, monkeypatch, capsys
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", silent_server)
    capsys.readouterr()
    assert returns_within(BOUND, train.main, ["tracking.timeout_s=1"]) == 2
    err = refusal(capsys)
    assert f"tracking store {silent_server} cannot be used: no answer within 1 s" in err


def test_a_locked_sqlite_store_is_refused_after_the_users_bound(held_lock, capsys):
    capsys.readouterr()
    assert returns_within(BOUND, train.main, ["tracking.timeout_s=1"]) == 2
    err = refusal(capsys)
    assert f"tracking store {held_lock} is locked" in err and "sqlite3 shell" in err


def test_the_lock_released_in_time_is_waited_for(isolated_mlflow):
    """The bound is a wait, not a refusal of any lock: a write lock held for a moment
    (another run logging) is waited out."""
    import threading

    holder = sqlite3.connect(
        isolated_mlflow.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
    )
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.5, lambda: holder.execute("ROLLBACK"))
    release.start()
    try:
        returns_within(BOUND, store.check, isolated_mlflow, timeout_s=30)
    finally:
        release.join()
        holder.close()


@pytest.mark.parametrize("command", [["inspect", "x"], ["best"], ["baseline", "x"]])
def test_the_commands_refuse_an_unreachable_store_too(command, closed_port, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port}")
    capsys.readouterr()
    assert returns_within(BOUND, kit.main, command) == 2
    assert f"tracking store http://127.0.0.1:{closed_port} cannot be used" in refusal(capsys)


def test_a_sweep_on_a_locked_store_is_refused_before_its_parent(held_lock, capsys):
    capsys.readouterr()
    code = returns_within(BOUND, train.main, ["-m", "model.C=1,2", "tracking.timeout_s=1"])
    assert code == 2
    assert "is locked" in refusal(capsys)


def test_a_missing_sqlite_file_is_fine_when_its_folder_can_be_made(tmp_path):
    path = tmp_path / "new" / "folder" / "mlflow.db"
    store.check_sqlite(f"sqlite:///{path}", path, timeout_s=5)
    assert path.parent.is_dir() and not path.exists()  # MLflow creates the file itself


def test_the_check_leaves_the_store_usable(isolated_mlflow):
    store.check(isolated_mlflow, timeout_s=5)
    client = MlflowClient(isolated_mlflow)
    experiment = client.create_experiment("after-the-check")
    assert client.create_run(experiment).info.status == "RUNNING"
    store.check(isolated_mlflow, timeout_s=5)  # with a run writing nothing, again


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sqlite:////proc/kit/mlflow.db", " cannot be created"),
        ("ftp://host/store", ": ftp:// is not a kind of tracking store MLflow knows"),
    ],
)
def test_stores_that_cannot_exist_are_one_line(uri, expected):
    with pytest.raises(StorageError) as caught:
        store.check(uri, timeout_s=5)
    assert f"tracking store {uri}{expected}" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_file_that_is_not_a_database_is_named(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("just some text, long enough to be read as a header" * 4)
    with pytest.raises(StorageError, match="not a database"):
        store.check(f"sqlite:///{path}", timeout_s=5)


def test_a_store_on_a_read_only_disk_is_one_line_before_the_run(
    tmp_path, isolated_mlflow, monkeypatch, capsys
):
    """A migrated store on a disk that became read-only (root ignores file modes, so a
    real read-only mount): SQLite still takes its lock, and MLflow's first write failed
    mid-run as "a bug in the kit". Now it is one line, exit 2, before any run."""
    import shutil
    import subprocess

    from servers import tmpfs

    with tmpfs(tmp_path / "disk", "64m") as disk:
        shutil.copy(isolated_mlflow.removeprefix("sqlite:///"), disk / "mlflow.db")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{disk / 'mlflow.db'}")
        code = returns_within(BOUND, train.main, ["tracking.experiment_name=read-only"])
        err = capsys.readouterr().err
    assert code == 2, err
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert "attempt to write a readonly database" in line and "unexpected" not in line


# The migration just before the one that creates `latest_metrics` (MLflow's own chain).
BEFORE_LATEST_METRICS = "7ac759974ad8"


def test_a_store_whose_tables_were_left_incomplete_is_one_line(tmp_path):
    """What four first runs at once left behind: one process made a table while another
    had not yet stamped the migration that makes it, so every later open fails with
    "table latest_metrics already exists". Made here with MLflow's own migrations."""
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase
    from sqlalchemy import create_engine, text

    path = tmp_path / "half.db"
    uri = f"sqlite:///{path}"
    engine = create_engine(uri)
    InitialBase.metadata.create_all(engine)  # as MLflow starts a new store
    with engine.begin() as connection:
        config = _get_alembic_config(uri)
        config.attributes["connection"] = connection
        command.upgrade(config, BEFORE_LATEST_METRICS)
        connection.execute(text("CREATE TABLE latest_metrics (key VARCHAR(250))"))
    engine.dispose()

    with pytest.raises(StorageError) as caught:
        store.check(uri, timeout_s=5)
    message = str(caught.value)
    assert message.startswith(f"tracking store {uri} has incomplete tables"), message
    assert "latest_metrics already exists" in message and f"mv {path} {path}.broken" in message
    assert "\n" not in message


def test_one_process_at_a_time_opens_a_sqlite_store(tmp_path):
    """The lock is the folder's: a second holder waits until the first lets go."""
    (tmp_path / "store").mkdir()
    path = tmp_path / "store" / "mlflow.db"
    uri = f"sqlite:///{path}"
    with store.one_creator(uri, path):
        with pytest.raises(StorageError, match="another process has been opening it for 0.2 s"):
            with store.one_creator(uri, path, wait_s=0.2):
                pass  # pragma: no cover (never reached: the lock is held)
    with store.one_creator(uri, path, wait_s=0.2):
        pass  # free again
    assert list(path.parent.iterdir()) == []  # nothing left beside the store
