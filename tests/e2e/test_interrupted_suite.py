"""A test process that dies before its teardown (the xdist controller killing a worker
after Ctrl-C, a SIGKILL, a crash) leaves no server behind: the servers it started are
told to its reaper (tests/reaper.py), which kills them once the process is gone. (An
interrupted suite left SeaweedFS and PostgreSQL servers running before.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import PROJECT

TESTS = PROJECT / "tests"

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from servers import seaweedfs

    def test_holds_a_server():
        with seaweedfs(Path({base!r})):
            Path({ready!r}).write_text("up")
            time.sleep(600)
    """
)


def processes_naming(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.parametrize(
    ("workers", "stop"),
    [(0, "kill"), (1, "kill"), (1, "ctrl-c")],
    ids=["one-process-killed", "xdist-worker-killed", "ctrl-c-to-the-suite"],
)
def test_a_suite_stopped_before_its_teardown_leaves_no_server(tmp_path, workers, stop):
    base, ready = tmp_path / "s3-held", tmp_path / "ready"
    holder = tmp_path / "test_holder.py"
    holder.write_text(HOLDER.format(tests=str(TESTS), base=str(base), ready=str(ready)))
    suite = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(workers),
         "-c", os.devnull, "--rootdir", str(tmp_path), str(holder)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,  # its own group, as a terminal's foreground job is
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120  # a bound, not a measurement
        while not ready.exists():
            assert suite.poll() is None, suite.stdout.read().decode() if suite.stdout else ""
            assert time.monotonic() < deadline, "the server never started"
            time.sleep(0.2)
        (server,) = [pid for pid in processes_naming(str(base)) if pid != suite.pid]
        if stop == "kill":  # the pytest process (or xdist worker) that started it
            os.kill(parent_of(server), signal.SIGKILL)  # no teardown, finalizer or atexit
        else:  # Ctrl-C in a terminal: SIGINT to the whole foreground group
            os.killpg(suite.pid, signal.SIGINT)
        deadline = time.monotonic() + 60
        while processes_naming(str(base)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_naming(str(base)) == [], "the server outlived its test process"
    finally:
        if suite.poll() is None:
            suite.kill()
        suite.wait(timeout=60)
        for pid in processes_naming(str(base)):  # this test's own leftovers, if it failed
            os.kill(pid, signal.SIGKILL)
