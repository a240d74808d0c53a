"""The kit's one error policy for every command.

A `KitError` is the user's to fix: one line on stderr, exit code 2. Anything else is a
bug in the kit: one line that says so (the traceback with LOGREG_DEBUG=1), exit code 1.
SIGINT (Ctrl-C), SIGTERM and SIGHUP stop the command as `Interrupted`: the run ends
KILLED with the reason in `kit.error`, files not yet stored stay in the spool, one line
on stderr, exit code 128 + the signal's number. Under `mlflow run`, a stop sent to
`mlflow run` alone arrives as SIGHUP once that process has ended (`launcher`). Output
piped into a reader that stops early (`inspect RUN | head`) ends the command quietly
with 141, as SIGPIPE would.
Either way the run `mlflow run` created for this process is never left RUNNING, and
that last call to the tracking store is bounded: the store may be what failed.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import select
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from logistic_regression import launcher
from logistic_regression.errors import (
    Interrupted,
    KitError,
    first_line,
    forget_stops,
    record_stop,
)
from logistic_regression.status import Status
from logistic_regression.uris import redact

DEBUG_VARIABLE = "LOGREG_DEBUG"
log = logging.getLogger("logistic_regression")


# The signals that stop a command honestly (SIGKILL cannot be caught: `sync` recovers).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def guarded(command: Callable[[], int]) -> int:
    """Run `command` under the error policy; its return value is the exit code. The
    error paths run inside the signal scope too: a signal while a refusal is recorded
    is handled the same way, and a second one is ignored."""
    one_line_store_errors()
    try:
        with stop_on_signals():
            try:
                try:
                    code = command()
                    if sys.stdout is not None:
                        sys.stdout.flush()  # a reader gone is found here, not at Python's exit
                    return code
                except KitError as exc:
                    return refuse(exc)
                except BrokenPipeError as exc:
                    if stdout_reader_gone():
                        return reader_gone()
                    return bug(exc)
                except Exception as exc:
                    return bug(exc)
            except Interrupted as exc:
                return interrupted(exc)
    except Interrupted as exc:  # it came where it could not be raised, until the end
        return interrupted(exc)


def exit_without_teardown(main: Callable[[], int]) -> int:
    """A command's entry point (`if __name__ == "__main__"` only): run `main`, then let
    the process end with its exit code once every exit handler has run, but without
    the interpreter's teardown, which frees every module's objects one by one (about
    0.7 s after a run that loaded MLflow, scikit-learn and matplotlib: a tenth of a
    whole run).

    The handler is registered before the command imports anything that registers its
    own, and exit handlers run newest first, so it runs last: the background worker is
    stopped, temporary folders are removed, MLflow's and the libraries' handlers run;
    then logging and the standard streams are flushed and the process exits. A `main`
    that raises (SystemExit included) gets Python's usual ending. A test runner calling
    `main` itself never gets here, so its own exit is untouched."""
    owner = os.getpid()
    outcome: list[int] = []

    def finish() -> None:
        if not outcome or os.getpid() != owner:  # a forked child ends its own way
            return
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            with contextlib.suppress(Exception):  # a reader gone: nothing left to say
                if stream is not None:
                    stream.flush()
        os._exit(outcome[0])

    atexit.register(finish)
    code = main()
    outcome.append(code)
    return code


# MLflow's SQL store logs every database error it catches (a locked SQLite file, a
# database server gone) with the whole traceback, again at each retry: 200 lines before
# the kit's own line says what failed. Its line stays, with the error's first line only.
STORE_LOGGER = "mlflow.store.db.utils"


class OneLineErrors(logging.Filter):
    """A logged error without its traceback: the message's and the error's first lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            said = (record.getMessage().strip().splitlines() or [""])[0]  # the SQL follows
            line = f"{said} {type(error).__name__}: {first_line(error)}"
            record.msg = redact(line)
            record.args = None
            record.exc_info = record.exc_text = None
        return True


def one_line_store_errors() -> None:
    """(Idempotent.) `LOGREG_DEBUG` keeps MLflow's tracebacks."""
    store_log = logging.getLogger(STORE_LOGGER)
    if not os.environ.get(DEBUG_VARIABLE) and not any(
        isinstance(f, OneLineErrors) for f in store_log.filters
    ):
        store_log.addFilter(OneLineErrors())


def bug(exc: Exception) -> int:
    """Anything but a user's mistake: one line that says it is the kit's."""
    if os.environ.get(DEBUG_VARIABLE):
        raise exc
    line = redact(first_line(exc))
    print(
        f"error: unexpected {type(exc).__name__}: {line} "
        f"(a bug in the kit; set {DEBUG_VARIABLE}=1 for the traceback)",
        file=sys.stderr,
    )
    fail_pending_mlflow_run(f"{type(exc).__name__}: {line}")
    return 1


def stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reader closed it (poll reports an error on it)."""
    try:
        descriptor = sys.stdout.fileno()
        poller = select.poll()
        poller.register(descriptor, select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


def reader_gone() -> int:
    """stdout's reader closed it (`| head`): neither the user's mistake nor a bug. The
    rest of the output goes nowhere (Python's own flush at exit would fail again)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    fail_pending_mlflow_run("BrokenPipeError: the reader of the output closed it")
    return 128 + signal.SIGPIPE


# Code a signal must not interrupt half-way: a database transaction cut by an exception
# that is not an Exception is never rolled back, and its lock would then refuse the very
# writes that end the run KILLED. A signal arriving there is raised once the code is left.
# MLflow's client layer above the store too: a stop raised there, between the store's
# answer and the kit, would lose what the store just did (a run created whose id the
# kit never got, so it could not end it; found by the import signal e2e test).
# An import too: one cut half-way leaves a module half made, and the next import of it
# (ending the run KILLED imports MLflow) fails with "partially initialized module".
UNSAFE_TO_INTERRUPT = (
    "/sqlalchemy/",
    "/mlflow/store/",
    "/mlflow/tracking/",
    "/alembic/",
    "<frozen importlib._bootstrap",
)
# Python ignores an exception raised inside a finalizer (it prints "Exception ignored in"
# and goes on): a signal arriving while one runs (GitPython's Repo.__del__, found by the
# signal e2e test) would be lost, and the run would finish. It is raised after it.
SWALLOWS_EXCEPTIONS = ("__del__",)
# Weak-reference callbacks swallow them too (a WeakValueDictionary forgetting an entry,
# `weakref.finalize`; found by the signal e2e test): code run from these modules waits.
SWALLOWS_EXCEPTIONS_IN = ("/weakref.py", "/_weakrefset.py")
RECHECK_S = 0.05


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Inside: the stop signals raise `Interrupted` in the main thread, at once or, inside
    the tracking store's database code, as soon as it is left. The first signal wins;
    later ones (a second Ctrl-C, `mlflow run` passing SIGTERM on) are ignored, so that
    ending the run honestly is not itself interrupted. A signal still waiting for a safe
    place when the block ends (a command that spent its time in database code: an
    `import`) is raised as the block ends, never dropped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in (*STOP_SIGNALS, signal.SIGALRM)}
    received: list[int] = []
    raised: list[bool] = []

    def raise_when_safe(frame: FrameType | None) -> None:
        if raised:
            return
        unsafe = _outermost_unsafe(frame)
        if unsafe is not None:
            # Raised the moment that code returns to the kit (a trace on the frame it
            # returns to), with a poll behind it: a poll alone rarely lands outside when
            # nearly all the time is spent inside (an `import`: one store write after
            # another).
            _on_next_line(unsafe.f_back, raise_when_safe)
            signal.signal(signal.SIGALRM, lambda _signum, later: raise_when_safe(later))
            signal.setitimer(signal.ITIMER_REAL, RECHECK_S)
            return
        signal.signal(signal.SIGALRM, previous[signal.SIGALRM])
        signal.setitimer(signal.ITIMER_REAL, 0)
        _stop_tracing()
        raised.append(True)
        raise Interrupted(received[0])

    def stop(signum: int, frame: FrameType | None) -> None:
        for other in STOP_SIGNALS:
            signal.signal(other, signal.SIG_IGN)
        received.append(signum)
        record_stop(signum)
        raise_when_safe(frame)

    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)
    launcher.watch_launcher()  # `mlflow run` stopped alone: SIGHUP here (see there)
    try:
        yield
    finally:
        if received:
            signal.setitimer(signal.ITIMER_REAL, 0)
            _stop_tracing()
            forget_stops(received)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received and not raised:
        raise Interrupted(received[0])


def _unsafe(frame: FrameType) -> bool:
    code = frame.f_code
    return code.co_name in SWALLOWS_EXCEPTIONS or any(
        part in code.co_filename for part in UNSAFE_TO_INTERRUPT + SWALLOWS_EXCEPTIONS_IN
    )


def _outermost_unsafe(frame: FrameType | None) -> FrameType | None:
    """The outermost frame, of `frame` and its callers, that must not be interrupted."""
    found = None
    while frame is not None:
        if _unsafe(frame):
            found = frame
        frame = frame.f_back
    return found


def _skip_calls(_frame: FrameType, _event: str, _arg: object) -> None:
    """The thread's trace function while a stop waits: no new frame is traced."""


def _on_next_line(frame: FrameType | None, then: Callable[[FrameType], None]) -> None:
    """`then(frame)` at `frame`'s next line or return: the moment the code it called
    returns to it. Only where nothing else traces this thread (a debugger, coverage):
    there the poll alone stays."""
    if frame is None or sys.gettrace() not in (None, _skip_calls):
        return

    def on_event(traced: FrameType, event: str, _arg: object):
        if event in ("line", "return"):
            then(traced)
        return on_event

    frame.f_trace = on_event
    sys.settrace(_skip_calls)  # frames' own traces run only while the thread has one


def _stop_tracing() -> None:
    if sys.gettrace() is _skip_calls:
        sys.settrace(None)


def interrupted(exc: Interrupted) -> int:
    """A stop signal: one line, the pending `mlflow run` run KILLED, exit 128 + signal."""
    run = f"; run {exc.run_id} ended KILLED" if exc.run_id else ""
    kept = (
        f"; its files not yet stored are kept in {exc.kept} "
        "(`python -m logistic_regression sync` uploads them)"
        if exc.kept
        else f"; files it wrote but never logged are kept in {exc.unlogged} (delete the "
        "folder when you no longer need them)"
        if exc.unlogged
        else ""
    )
    print(f"error: {exc}{run}{kept}", file=sys.stderr)
    fail_pending_mlflow_run(str(exc), Status.KILLED, what="stopped")
    return 128 + exc.signum


def refuse(exc: KitError) -> int:
    """A user error: one line on stderr, the pending `mlflow run` run failed, exit code 2."""
    message = redact(str(exc))
    print(f"error: {message}", file=sys.stderr)
    fail_pending_mlflow_run(message, what="refused")
    return 2


# The name MLflow gives a run nobody named (`bold-fox-123`), which a run the kit never
# got to name keeps unless renamed.
MLFLOW_NAME = re.compile(r"[a-z]+-[a-z]+-\d{1,4}")


def ended_name(reason: str, what: str) -> str:
    """A name that says at a glance, in the runs list, why a run never trained:
    `refused: data.input='x.csv' does not exist`."""
    text = redact(f"{what}: {reason}")
    return text if len(text) <= 100 else text[:99] + "…"


def fail_pending_mlflow_run(reason: str, status: str = Status.FAILED, what: str = "failed") -> None:
    """`mlflow run` created a run before starting us; never leave it RUNNING."""
    if not os.environ.get("MLFLOW_RUN_ID"):  # no run to end: MLflow is not even imported
        return
    run_id = os.environ["MLFLOW_RUN_ID"]
    try:
        from logistic_regression.tracking import runs

        with runs.bounded_store():
            if runs.run_status(run_id) == Status.RUNNING:
                runs.fail_run(run_id, reason, status)
                if MLFLOW_NAME.fullmatch(runs.run_name(run_id)):  # not one the user chose
                    runs.rename(run_id, ended_name(reason, what))
    except Exception as exc:  # the store is gone too: say so, do not mask the first error
        log.warning("could not mark run %s FAILED: %s", run_id, redact(first_line(exc)))
