"""Run pure, CPU-bound helpers (chart drawing, package listing) on a second core.

A forked worker: it starts with every module the parent already imported, so it pays
no import cost of its own. Fork is only safe before a process has threads, so enter
`Background` before the first MLflow call. Where fork is not available or not safe
(macOS, Windows) the work runs inline, with the same results.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class Background:
    def __init__(self, *warm_ups: Callable[[], Any]) -> None:
        self._warm_ups = warm_ups
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Background:
        if sys.platform.startswith("linux"):
            context = multiprocessing.get_context("fork")
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
            for warm_up in self._warm_ups:
                self._pool.submit(warm_up)
        return self

    def submit(self, function: Callable[..., T], *args: Any) -> Callable[[], T]:
        """Start `function(*args)`; the returned callable waits for and gives its result."""
        if self._pool is None:
            return lambda: function(*args)
        return self._pool.submit(function, *args).result

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
