"""Where a run's upload engine (`uploader.Engine`) runs, behind one small interface
(`queued`, `alive`, `stop`, `kill`) that `writer.ArtifactWriter` uses:

- `UploadProcess`: an uploader process of its own, following the run's journal, for S3
  and a tracking server: requests, checksums and retries never take the GIL from
  training, and a run stopped by a signal ends it by closing its stdin;
- `UploadThreads`: a few threads of the run's own process, for local folders only (the
  embedded default): a copy needs no network and releases the GIL, and starting an
  interpreter for it cost more than the copies.
"""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

from logistic_regression.environment import for_child
from logistic_regression.storage.spool import Entry, Journal
from logistic_regression.storage.uploader import QUIET_S, Engine, Settings, settings_argument

# Wake the uploader at most this often while files are logged in a burst: it reads the
# journal only after QUIET_S without a wake-up, so an entry written within this interval
# of the previous wake-up is read with it (and it polls the journal twice a second anyway).
WAKE_EVERY_S = QUIET_S / 4


class UploadProcess:
    """The upload engine in an uploader process of its own, following the journal."""

    def __init__(self, folder: Path, settings: Settings) -> None:
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "logistic_regression.storage.uploader",
                str(folder),
                settings_argument(settings),
            ],
            stdin=subprocess.PIPE,
            env=for_child(),
            # Its own process group: Ctrl-C and a scheduler's SIGTERM to the run's group
            # stop the run, which then ends the uploader by closing its stdin (a signal
            # while it starts up would kill it with a traceback instead).
            process_group=0,
        )
        assert self._process.stdin is not None  # stdin=PIPE
        self._wake = self._process.stdin  # a new line: "look at the journal again"
        self._woken = 0.0

    def queued(self, entry: Entry) -> None:
        """The journal has a new entry: wake the process (it reads the journal itself)."""
        now = time.monotonic()
        if now - self._woken < WAKE_EVERY_S:
            return  # a wake-up this recent is still pending: the uploader reads this too
        self._woken = now
        with suppress(OSError):  # wake the uploader; if it is gone, `sync` will do it
            self._wake.write(b"\n")
            self._wake.flush()

    def alive(self) -> bool:
        return self._process.poll() is None

    def stop(self) -> None:
        """End of stdin: the process exits at once (what is unverified stays for `sync`)."""
        with suppress(OSError):
            self._wake.close()
        with suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=10)
        self.kill()

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()


class UploadThreads:
    """The upload engine in this process's threads, for files bound for local folders."""

    def __init__(self, folder: Path, settings: Settings, journal: Journal) -> None:
        self._engine = Engine(folder, settings)
        for entry in journal.pending:  # left by an earlier process
            self._engine.submit(entry)

    def queued(self, entry: Entry) -> None:
        self._engine.submit(entry)

    def alive(self) -> bool:
        return not self._engine.results_error  # outcomes can no longer be recorded

    def stop(self) -> None:
        """Copies in flight finish (a local copy: bounded by the disk), the rest wait in
        the spool for `sync`; no thread of the engine outlives the writer."""
        self._engine.close(wait=True)

    kill = stop
