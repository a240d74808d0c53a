"""The one error policy: a user error is one line (exit 2), anything else one line that
says it is a bug (exit 1); the run `mlflow run` made is never left RUNNING, and that last
call to the store is bounded even when the store is what hangs."""

from __future__ import annotations

import socket
import sys
import threading

import pytest
from conftest import recorded_run
from mlflow.tracking import MlflowClient

from logistic_regression import cli
from logistic_regression.errors import ConfigError


def pending_mlflow_run(monkeypatch) -> str:
    """A RUNNING run, as `mlflow run` leaves one for the process it starts."""
    client = MlflowClient()
    run = client.create_run(client.create_experiment("cli"))
    monkeypatch.setenv("MLFLOW_RUN_ID", run.info.run_id)
    return run.info.run_id


def test_a_user_error_is_one_line_exit_2_and_fails_the_pending_run(monkeypatch, capsys):
    run_id = pending_mlflow_run(monkeypatch)
    capsys.readouterr()  # what creating the store printed

    def command() -> int:
        raise ConfigError("model.C=-1 is not allowed; C must be a number > 0")

    assert cli.guarded(command) == 2
    err = capsys.readouterr().err
    assert err == "error: model.C=-1 is not allowed; C must be a number > 0\n"
    run = MlflowClient().get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["kit.error"].startswith("model.C=-1 is not allowed")
    # MLflow's random name gave no clue; the runs list now says why it never trained
    assert run.info.run_name == "refused: model.C=-1 is not allowed; C must be a number > 0"


def test_a_refused_run_the_user_named_keeps_its_name(monkeypatch, capsys):
    run_id = pending_mlflow_run(monkeypatch)
    MlflowClient().update_run(run_id, name="my-experiment-run")

    def command() -> int:
        raise ConfigError("model.C=-1 is not allowed; C must be a number > 0")

    assert cli.guarded(command) == 2
    assert MlflowClient().get_run(run_id).info.run_name == "my-experiment-run"


def test_anything_else_is_one_line_that_says_bug_exit_1(monkeypatch, capsys):
    run_id = pending_mlflow_run(monkeypatch)
    monkeypatch.delenv(cli.DEBUG_VARIABLE, raising=False)
    capsys.readouterr()  # what creating the store printed

    def command() -> int:
        raise ZeroDivisionError("division by zero\nsecond line of a long story")

    assert cli.guarded(command) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "unexpected ZeroDivisionError: division by zero" in err and "bug" in err
    assert MlflowClient().get_run(run_id).info.status == "FAILED"


def test_with_debug_set_the_traceback_is_shown(monkeypatch):
    monkeypatch.setenv(cli.DEBUG_VARIABLE, "1")

    def command() -> int:
        raise ZeroDivisionError("boom")

    with pytest.raises(ZeroDivisionError):
        cli.guarded(command)


def test_passwords_in_a_message_are_hidden(capsys):
    def command() -> int:
        raise ConfigError("cannot reach postgresql://alice:hunter2@127.0.0.1/db")

    assert cli.guarded(command) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err and "postgresql://***@127.0.0.1/db" in err  # user-info whole


def test_failing_the_pending_run_is_bounded_when_the_store_hangs(monkeypatch, caplog):
    """A tracking server that accepts connections and never answers: MLflow alone would
    retry for many minutes; the error handler gives up after one bounded try."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # accepts (in the kernel), never answers
    port = listener.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_RUN_ID", "0" * 32)
    monkeypatch.setattr("logistic_regression.tracking.runs.ERROR_PATH_TIMEOUT_S", 2.0)
    try:
        worker = threading.Thread(target=cli.fail_pending_mlflow_run, args=("reason",), daemon=True)
        worker.start()
        worker.join(120)  # generous: unbounded, MLflow would still be retrying
        assert not worker.is_alive(), "the error handler waited on a hanging store"
    finally:
        listener.close()
    assert "could not mark run" in caplog.text


def test_a_signal_ends_a_command_with_one_line_and_128_plus_the_signal(monkeypatch, capsys):
    import os
    import signal

    pending = recorded_run("Default", "mlflow-run", status=None)  # as `mlflow run` made it
    monkeypatch.setenv("MLFLOW_RUN_ID", pending)

    def command() -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)  # a second signal while stopping: ignored
        return 0

    assert cli.guarded(command) == 128 + signal.SIGTERM
    assert capsys.readouterr().err.splitlines() == ["error: interrupted by SIGTERM"]
    run = MlflowClient().get_run(pending)
    assert run.info.status == "KILLED" and run.data.tags["kit.error"] == "interrupted by SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_a_signal_inside_the_stores_database_code_waits_until_it_is_left():
    """A transaction cut half-way keeps its database lock; the signal is raised after."""
    import os
    import signal
    import time

    source = (
        "def transaction(log):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    deadline = time.monotonic() + 0.5\n"
        "    while time.monotonic() < deadline:\n"
        "        pass\n"
        "    log.append('committed')\n"
    )
    namespace = {"os": os, "signal": signal, "time": time}
    exec(compile(source, "/site-packages/sqlalchemy/engine/fake.py", "exec"), namespace)
    log: list[str] = []

    def command() -> int:
        namespace["transaction"](log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the signal comes now that the code is left
            time.sleep(0.01)
        return 0

    assert cli.guarded(command) == 128 + signal.SIGTERM
    assert log == ["committed"]


def test_a_command_almost_always_in_database_code_stops_as_soon_as_it_is_left():
    """One store write after another with next to no time between them (an `import`): a
    stop waits for the write it lands in, then comes at once; it used to wait for a poll
    to land between two writes, which under load was the whole import."""
    import os
    import signal
    import time

    source = (
        "def write(log, signal_now):\n"
        "    if signal_now:\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "    deadline = time.monotonic() + 0.2\n"
        "    while time.monotonic() < deadline:\n"
        "        pass\n"
        "    log.append('written')\n"
    )
    namespace = {"os": os, "signal": signal, "time": time}
    exec(compile(source, "/site-packages/sqlalchemy/orm/fake.py", "exec"), namespace)
    log: list[str] = []

    def command() -> int:
        for row in range(200):
            namespace["write"](log, row == 2)
        return 0

    assert cli.guarded(command) == 128 + signal.SIGTERM
    assert log == ["written"] * 3  # the write it landed in ended; no other began
    assert sys.gettrace() is None  # nothing left tracing


def test_a_signal_still_waiting_when_the_command_ends_is_not_dropped(capsys):
    """A command that spends nearly all its time in database code (`import`: one store
    write after another) may end before a check finds it outside: the stop is then
    reported as the command ends (exit 128 + signal), where it used to be dropped (0)."""
    import os
    import signal

    source = "def last_write():\n    os.kill(os.getpid(), signal.SIGTERM)\n"
    namespace = {"os": os, "signal": signal}
    exec(compile(source, "/site-packages/mlflow/store/fake.py", "exec"), namespace)

    def command() -> int:
        namespace["last_write"]()  # the signal lands inside; the command returns at once
        return 0

    assert cli.guarded(command) == 128 + signal.SIGTERM
    assert capsys.readouterr().err.splitlines() == ["error: interrupted by SIGTERM"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.parametrize("kind", ["__del__", "weakref.finalize"])
def test_a_signal_inside_a_finalizer_is_raised_after_it_not_lost(kind):
    """Python ignores an exception raised in `__del__` or a weak-reference callback: the
    signal waits until it returns."""
    import os
    import signal
    import time
    import weakref

    log: list[str] = []

    def finalize() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            pass
        log.append("finalized")

    class Finalized:
        def __del__(self) -> None:
            finalize()

    class Plain:
        pass

    def command() -> int:
        if kind == "__del__":
            Finalized()  # dropped at once: its __del__ runs here and receives the signal
        else:
            weakref.finalize(Plain(), finalize)  # likewise, through weakref.py
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the signal comes once the finalizer is left
            time.sleep(0.01)
        return 0

    assert cli.guarded(command) == 128 + signal.SIGTERM
    assert log == ["finalized"]


def test_a_broken_pipe_that_is_not_stdout_is_a_bug(capsys):
    """Only a reader gone from stdout ends quietly; a broken pipe elsewhere is reported."""

    def command() -> int:
        raise BrokenPipeError(32, "Broken pipe")

    assert cli.guarded(command) == 1
    assert "unexpected BrokenPipeError" in capsys.readouterr().err


def spool_folder(tmp_path, *, logged: bool, unlogged: bool):
    """A run's spool folder as an interrupted run leaves it: a file logged and not yet
    stored (in the journal), and/or a file written into it but never logged."""
    import json

    from logistic_regression.storage import spool

    folder = tmp_path / "spool" / "r1"
    (folder / spool.SCRATCH).mkdir(parents=True)
    lines = [{"event": "run", "run_id": "r1", "tracking_uri": "sqlite:///m.db", "version": 2}]
    if logged:
        (folder / spool.SCRATCH / "config.yaml").write_text("seed: 1\n")
        lines.append(
            {"event": "queued", "id": 0, "source": "scratch/config.yaml", "root": "/store",
             "path": "config.yaml", "size": 8}
        )  # fmt: skip
    if unlogged:
        (folder / spool.SCRATCH / "report.html").write_text("<html></html>")
    (folder / spool.JOURNAL).write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


@pytest.mark.parametrize(
    ("logged", "unlogged", "said"),
    [
        (True, True, "its files not yet stored are kept in {folder} (`python -m "),
        (False, True, "files it wrote but never logged are kept in {folder} (delete the"),
        (False, False, None),
    ],
)
def test_a_stopped_run_says_what_sync_will_do_with_its_files(
    tmp_path, capsys, logged, unlogged, said
):
    """`sync` uploads logged files; files never logged it cannot attach to the run, so
    the line must not promise it (it said so for both before)."""
    import signal

    from logistic_regression.errors import Interrupted
    from logistic_regression.lifecycle import what_is_kept

    folder = spool_folder(tmp_path, logged=logged, unlogged=unlogged)
    stopped = Interrupted(signal.SIGINT).ended("", *what_is_kept(folder))
    assert cli.interrupted(stopped) == 128 + signal.SIGINT
    (line,) = capsys.readouterr().err.splitlines()
    if said is None:
        assert line == "error: interrupted by SIGINT"
    else:
        assert said.format(folder=folder) in line
        assert ("sync` uploads them" in line) == logged


def test_the_stores_logged_database_errors_are_one_line_each(capfd):
    """MLflow's SQL store logs each database error with its traceback (a locked SQLite
    file: 200 lines); under the kit, its line stays and the traceback goes."""
    import logging

    def command() -> int:
        try:
            raise RuntimeError("(sqlite3.OperationalError) database is locked\n[SQL: SELECT 1]")
        except RuntimeError:
            logging.getLogger(cli.STORE_LOGGER).exception(
                "SQLAlchemy database error.\n%s", "(sqlite3.OperationalError) locked\n[SQL: ...]"
            )  # as MLflow logs it
        return 0

    assert cli.guarded(command) == 0
    err = capfd.readouterr().err
    assert "Traceback" not in err and "[SQL" not in err, err
    (line,) = [line for line in err.splitlines() if line.strip()]
    assert line.endswith(
        "SQLAlchemy database error. RuntimeError: (sqlite3.OperationalError) database is locked"
    )


def test_a_signal_during_an_import_is_raised_once_the_module_is_whole(tmp_path, monkeypatch):
    """Ctrl-C on `mlflow run` while the kit imported MLflow cut the import half-way; ending
    the run KILLED then imported MLflow again and met `partially initialized module`
    (a 70-line traceback, no kit.error). The stop now waits for the import to finish."""
    import signal
    import time

    (tmp_path / "slow_module.py").write_text(
        "import os, signal, time\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "deadline = time.monotonic() + 0.3\n"
        "while time.monotonic() < deadline:\n"
        "    pass\n"
        "WHOLE = True\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "slow_module", raising=False)

    def command() -> int:
        import slow_module  # noqa: F401

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.01)
        return 0

    assert cli.guarded(command) == 128 + signal.SIGINT
    assert sys.modules["slow_module"].WHOLE is True


def test_sweep_help_says_how_to_sweep_not_how_to_train(capsys):
    from logistic_regression.__main__ import main

    assert main(["sweep", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith('usage: python -m logistic_regression sweep "SWEEP OVERRIDES"')
    assert "sweep.resume=PARENT_RUN_ID" in out and "powered by Hydra" not in out


def test_the_ui_hint_for_a_file_store_says_what_mlflow_ui_needs():
    from logistic_regression.console import ui_hint

    assert ui_hint("./mlruns-files").startswith(
        "MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri "
    )
    assert (
        ui_hint("sqlite:////x/mlflow.db") == "mlflow ui --backend-store-uri sqlite:////x/mlflow.db"
    )


def test_a_stop_whose_interrupted_a_library_swallowed_still_ends_the_run_killed(config, capsys):
    """A library's `except BaseException` without a raise can swallow the Interrupted a
    stop signal raised (the full suite once saw a Ctrl-C'd run reach FINISHED). The run's
    owner asks before it ends the run: KILLED, with the reason, and the command says so."""
    import os
    import signal

    from logistic_regression import pipeline

    def swallowing(run_id: str) -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except BaseException:  # noqa: S110 - what the test is about
            pass

    code = cli.guarded(lambda: pipeline.run(config, on_open=swallowing) and 0)
    assert code == 128 + signal.SIGTERM
    assert "error: interrupted by SIGTERM; run " in capsys.readouterr().err
    (run,) = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("logistic-regression").experiment_id]
    )
    assert run.info.status == "KILLED"
    assert run.data.tags["kit.error"] == "interrupted by SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
