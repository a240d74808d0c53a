"""Run pure, CPU-bound helpers (model saving, chart drawing, package listing) off the
main thread, in two forked workers (measured faster than one on two cores).

Forked workers start with every module the parent already imported, so they pay no
import cost of their own. Fork is only safe before a process has threads, so enter
`Background` before the first MLflow call. Where fork is not available or not safe
(macOS, Windows) the work runs inline, with the same results.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
WORKERS = 2


class Background:
    def __init__(self, *warm_ups: Callable[[], Any]) -> None:
        self._warm_ups = warm_ups
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Background:
        if sys.platform.startswith("linux"):
            context = multiprocessing.get_context("fork")
            self._pool = ProcessPoolExecutor(
                max_workers=WORKERS,
                mp_context=context,
                initializer=_die_with_parent,
                initargs=(os.getpid(),),
            )
            # Python forks workers on demand; submitting WORKERS tasks now forks them all
            # here, before MLflow or the upload threads start threads of their own.
            tasks = [*self._warm_ups, *[_nothing] * max(0, WORKERS - len(self._warm_ups))]
            for task in tasks:
                self._pool.submit(task)
        return self

    def submit(self, function: Callable[..., T], *args: Any) -> Callable[[], T]:
        """Start `function(*args)`; the returned callable waits for and gives its result."""
        if self._pool is None:
            return lambda: function(*args)
        return self._pool.submit(function, *args).result

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _nothing() -> None:
    return None


def _die_with_parent(parent: int) -> None:
    """A worker whose parent is killed (SIGKILL) must not linger as an orphan: ask
    Linux to kill it when the parent goes (prctl PR_SET_PDEATHSIG)."""
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
