"""Run pure, CPU-bound helpers (model saving, predictions CSV, chart drawing, package
listing) off the main thread, in one worker process: the run fits its folds on one core
while the worker uses the other. A second worker was no faster once training overlaps
the worker, and cost 40 MB at the peak of a 200,000-row run (bench/data_scale.py).

Fork gives workers every module the process already imported for free, but forking a
process that runs threads can deadlock the child (Python 3.12+ warns about it). So the
workers are forked once, the first time a run needs them, and only while the process
provably runs a single thread: the command held back the numeric libraries' thread
pools before it loaded them (`environment.hold_thread_pools`), and `/proc/self/task` is counted, not
assumed. Right after the fork the thread pools are released (`release_thread_pools`),
so training uses every core as usual. The objects alive at the fork are frozen out of
the garbage collector (`gc.freeze`): collections would touch every one of them and copy
their pages, which cost 130 MB of memory in a large run. The same worker then serves
every later run of the process (each configuration of a sweep), keeping its imports.

The worker is handed one task at a time (`_Gate`): ProcessPoolExecutor would pass the
next task to the worker's queue at once, and a task there can no longer be taken back.
Held here instead, a task the worker has not started when its result is wanted (behind
the chart library's warm-up, behind another task) runs in the caller, which would
otherwise only wait.

Where the process already runs threads (the kit imported as a library after numpy, or
inside a test runner), where fork is missing (macOS, Windows), in a process forked from
one that has a pool, or once a worker died (its task is then redone here), the work runs
inline, with the same results. A SIGKILLed run leaves no worker behind
(PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import multiprocessing
import multiprocessing.util
import os
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from logistic_regression import environment

T = TypeVar("T")
WORKERS = 1
# How long a failed run waits for its tasks already running (saving a model: seconds).
EXIT_WAIT_S = 60.0
# Thread-limit variable -> the library threadpoolctl lifts it for (internal API name).
THREAD_POOL_APIS = {
    "OPENBLAS_NUM_THREADS": "openblas",
    "MKL_NUM_THREADS": "mkl",
    "OMP_NUM_THREADS": "openmp",
}

_pool: ProcessPoolExecutor | None = None
_gate: _Gate | None = None
_pool_refused = False


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def thread_count() -> int:
    """Threads this process runs now, as the kernel counts them (Linux), else 0 (unknown)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


def shared_pool(*warm_ups: Callable[[], Any]) -> ProcessPoolExecutor | None:
    """The process's worker pool, forked now if this is the first call and the process
    is single-threaded; None when the work has to run inline."""
    global _pool, _gate, _pool_refused
    if _pool is not None or _pool_refused:
        return _pool
    if not sys.platform.startswith("linux") or thread_count() != 1:
        _pool_refused = True
        release_thread_pools()
        return None
    gc.freeze()  # collections here and in the worker leave the imported objects' pages shared
    pool = ProcessPoolExecutor(
        max_workers=WORKERS,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    )
    # With fork, the first submit forks every worker before the pool starts its own
    # manager thread: all of them leave a single-threaded process.
    gate = _Gate(pool)
    tasks = [*warm_ups, *[_nothing] * max(0, WORKERS - len(warm_ups))]
    for task in tasks:
        gate.submit(task)
    release_thread_pools()
    _pool, _gate = pool, gate
    # Stopped before the process waits for its children on the way out. A process that
    # multiprocessing started itself (a joblib/loky sweep worker) never runs atexit: it
    # runs these finalizers, then joins every child, so idle workers never told to stop
    # would hang it (and the sweep's parent) forever.
    multiprocessing.util.Finalize(
        None, _stop_pool, args=(pool, gate, os.getpid()), exitpriority=100
    )
    return _pool


def stop() -> None:
    """Stop this process's workers now (they are forked again if a later run needs them)."""
    global _pool, _gate, _pool_refused
    if _gate is not None:
        _gate.end_waiting()
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
    _pool, _gate, _pool_refused = None, None, False


def _stop_pool(pool: ProcessPoolExecutor, gate: _Gate, owner: int) -> None:
    """The exit of the process that forked `pool`: tasks not started are dropped, the
    workers stop and are waited for."""
    if os.getpid() == owner:
        gate.end_waiting()
        pool.shutdown(wait=True, cancel_futures=True)


def release_thread_pools() -> None:
    """Lift the thread limits the command held (`environment.hold_thread_pools`; not the
    user's own), for this process and the processes it starts."""
    held = environment.release_thread_pools()
    apis = [api for name, api in THREAD_POOL_APIS.items() if name in held]
    if apis:
        from threadpoolctl import ThreadpoolController

        ThreadpoolController().select(internal_api=apis).limit(limits=cores())


def _forget_pool_in_forked_child() -> None:
    """A process forked from this one (by a user, a launcher) cannot use the pool: its
    manager thread does not exist there. It works inline."""
    global _pool, _gate, _pool_refused
    _pool, _gate, _pool_refused = None, None, True


os.register_at_fork(after_in_child=_forget_pool_in_forked_child)


class Background:
    """One run's use of the workers. Tasks of a run that fails and have not started yet
    are cancelled when the run leaves the block."""

    def __init__(self, *warm_ups: Callable[[], Any]) -> None:
        self._warm_ups = warm_ups
        self._gate: _Gate | None = None
        self._futures: list[Future] = []

    def __enter__(self) -> Background:
        self._gate = _gate if shared_pool(*self._warm_ups) is not None else None
        return self

    def submit(self, function: Callable[..., T], *args: Any) -> Callable[[], T]:
        """Start `function(*args)`; the returned callable waits for and gives its result.
        A task the worker has not started by then runs here instead (the caller would
        only wait), and so does one whose worker died."""
        if self._gate is not None:
            future = self._gate.submit(function, *args)
            self._futures.append(future)

            def result() -> T:
                if future.cancel():  # not handed to the worker yet: do it here
                    return function(*args)
                try:
                    return future.result()
                except BrokenProcessPool:
                    self._broken()
                    return function(*args)

            return result
        return lambda: function(*args)

    def _broken(self) -> None:
        """A worker died: this run and every later one of the process work inline."""
        global _pool, _gate, _pool_refused
        self._gate = None
        _pool, _gate, _pool_refused = None, None, True

    def drain(self) -> None:
        """For a failed run: tasks not started are cancelled, running ones are waited
        for (they write into the run's spool folder), with a bound."""
        for future in self._futures:
            future.cancel()
        wait(self._futures, timeout=EXIT_WAIT_S)

    def __exit__(self, *exc_info: object) -> None:
        if exc_info[0] is not None:
            self.drain()


class _Gate:
    """Hands the pool's workers one task each at a time and holds the rest, so that a
    task not started yet can still be cancelled (and run by its caller)."""

    def __init__(self, pool: ProcessPoolExecutor) -> None:
        self._pool = pool
        self._lock = threading.Lock()
        self._waiting: deque[tuple[Future, Callable[..., Any], tuple[Any, ...]]] = deque()
        self._handed = 0  # tasks with the pool, not finished yet

    def submit(self, function: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        with self._lock:
            self._waiting.append((future, function, args))
        self._hand_on()
        return future

    def end_waiting(self, error: BaseException | None = None) -> None:
        """Every task still held ends: cancelled, or with `error` (a broken pool: their
        callers then run them themselves)."""
        with self._lock:
            waiting, self._waiting = list(self._waiting), deque()
        for future, _, _ in waiting:
            if error is None:
                future.cancel()
                future.set_running_or_notify_cancel()  # so that wait() counts it done
            elif future.set_running_or_notify_cancel():
                future.set_exception(error)

    def _hand_on(self) -> None:
        while True:
            with self._lock:
                if self._handed >= WORKERS or not self._waiting:
                    return
                future, function, args = self._waiting.popleft()
                if not future.set_running_or_notify_cancel():
                    continue  # taken back by its caller
                self._handed += 1
            try:
                handed = self._pool.submit(function, *args)
            except Exception as exc:  # a broken or stopped pool
                with self._lock:
                    self._handed -= 1
                future.set_exception(exc)
                continue
            handed.add_done_callback(functools.partial(self._finished, future))

    def _finished(self, future: Future, done: Future) -> None:
        """In the pool's manager thread (or here when the task was already done). A pool
        that broke (a worker died) calls this holding its own lock on Python 3.12+, which
        `submit` takes too: nothing more is handed to it then."""
        with self._lock:
            self._handed -= 1
        if done.cancelled():  # the pool is stopping
            future.set_exception(CancelledError())
            self.end_waiting()
            return
        error = done.exception()
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(done.result())
        if isinstance(error, BrokenProcessPool):
            self.end_waiting(error)
        else:
            self._hand_on()


def _nothing() -> None:
    return None


def _die_with_parent(parent: int) -> None:
    """A worker whose parent is killed (SIGKILL) must not linger as an orphan: ask
    Linux to kill it when the parent goes (prctl PR_SET_PDEATHSIG). Ctrl-C and a closed
    terminal reach the whole process group: the parent handles them (cli.py) and stops
    the workers, so they ignore them instead of printing tracebacks of their own; SIGTERM
    ends a worker quietly (the parent's handler, inherited by fork, is not theirs)."""
    import ctypes
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    PR_SET_PDEATHSIG = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
