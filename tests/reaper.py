"""The servers a test process started die with it, however it ends.

Each pytest process (the suite, or one xdist worker) starts one reaper (`start`) and
tells it every server it starts (`track`): a line `<pid> <start time> <scope>` on the
reaper's stdin. A test stops its servers itself; the reaper is for when that never
happens: Ctrl-C before the teardown ran, the xdist controller killing a worker, a
SIGKILL, a crash. The worker's end closes the pipe (whatever killed it), and the reaper
then kills each server still alive that is the one it was told of (same pid and start
time, so a reused pid is never hit), its process group or session where asked.

    python tests/reaper.py          (started by `start`, never by hand)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

_pipe = None
_reaper: subprocess.Popen | None = None
_lock = threading.Lock()


def started_at(pid: int) -> str:
    """The process's start time in clock ticks (/proc/<pid>/stat, field 22), or ""."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def start() -> None:
    """This process's reaper (once)."""
    global _pipe, _reaper
    with _lock:
        if _pipe is None:
            _reaper = reaper = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__)],
                stdin=subprocess.PIPE,
                start_new_session=True,  # a Ctrl-C to the suite's group must not stop it
            )
            _pipe = reaper.stdin


PROCESS, GROUP, SESSION = "process", "group", "session"


def track(pid: int, scope: str = PROCESS) -> None:
    """Kill `pid` if this process ends first: the process, its process group (`GROUP`),
    or every process of the session it led (`SESSION`: `ray start`'s daemons, whose
    leader has exited)."""
    start()
    assert _pipe is not None
    with _lock:
        _pipe.write(f"{pid} {started_at(pid) or '-'} {scope}\n".encode())
        _pipe.flush()


def session_members(session: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    if int(stat.read().rsplit(b")", 1)[1].split()[3]) == session:
                        members.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return members


def _reap(tracked: list[tuple[int, str, str]]) -> None:
    for pid, when, scope in tracked:
        try:
            if scope == SESSION:
                for member in session_members(pid):
                    os.kill(member, signal.SIGKILL)
                continue
            if started_at(pid) != when:
                continue  # gone already (stopped by its test), or the pid is another process now
            if scope == GROUP:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except OSError:
            continue


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    tracked = []
    for line in sys.stdin:
        pid, when, scope = line.split()
        tracked.append((int(pid), when, scope))
    _reap(tracked)  # stdin closed: the test process is gone, or done


if __name__ == "__main__":
    main()


def pid() -> int | None:
    """This process's reaper, if started (the leftover-process check leaves it alone)."""
    return _reaper.pid if _reaper is not None else None
