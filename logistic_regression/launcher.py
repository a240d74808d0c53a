"""The `mlflow run` process that launched the kit, watched from both ends.

`mlflow run` creates the run, then starts the kit in a shell and waits for it. MLflow
installs no handler for SIGTERM or SIGHUP, so a stop sent to `mlflow run` alone (its pid,
as a scheduler or `kill` sends it) ends that process at once and nothing else:

- while the kit runs, the kit would carry on, orphaned, to FINISHED. `watch_launcher`
  finds the `mlflow run` above this process and, once it has ended, stops this process
  with SIGHUP (the signal for "the process in charge of me is gone"), so the kit ends
  the run KILLED as for any stop;
- before the kit has started (the environment is being built), the run stays RUNNING
  and no process of the kit ever hears of it. `sync` settles such runs of a local store
  (`tracking.unlaunched`): RUNNING, started by `mlflow run`, no tag of the kit, while no
  `mlflow run` process for that store runs on this machine. A tracking server's runs may
  belong to an `mlflow run` on another machine, so there they are only counted.

Linux only (processes are read from /proc; pidfd waits for one to end); elsewhere
nothing is watched and `sync` settles nothing of this kind.
"""

from __future__ import annotations

import os
import select
import signal
import threading
from pathlib import Path

from logistic_regression.uris import store_uri

PROC = Path("/proc")
DEFAULT_STORE = "sqlite:///mlflow.db"  # MLflow 3's default tracking URI, in the cwd
WATCHER = "kit-launcher-watch"
# MLproject's main entry names `mlflow run`'s pid (its shell's $PPID) here: once that
# process has ended, this one is no longer below it, and walking up would not find it.
LAUNCHER_VARIABLE = "LOGREG_LAUNCHER_PID"
# bash, an environment's activation script, `python -m logistic_regression.mlproject`:
# the kit is a few levels below `mlflow run` at most.
LEVELS = 6


def is_mlflow_run(argv: list[str]) -> bool:
    """`mlflow run ...` (the console script) or `python -m mlflow run ...`."""
    return any(
        Path(arg).name == "mlflow" and following == "run"
        for arg, following in zip(argv, argv[1:], strict=False)
    )


def _argv(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the process's name (which may hold spaces and
    parentheses): [0] is the state, [1] the parent's pid, [19] the start time; [] when
    the process cannot be read."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _parent(pid: int) -> int:
    fields = stat_fields(pid)
    return int(fields[1]) if len(fields) > 1 else 0


def launcher() -> int | None:
    """The pid of the `mlflow run` this process runs under, if any: the one MLproject's
    main entry names (LAUNCHER_VARIABLE, its shell's $PPID), else the first found above."""
    given = os.environ.get(LAUNCHER_VARIABLE, "")
    if given.isdigit():
        return int(given)
    pid = os.getppid()
    for _ in range(LEVELS):
        if pid <= 1:
            return None
        if is_mlflow_run(_argv(pid)):
            return pid
        pid = _parent(pid)
    return None


def watch_launcher() -> None:
    """Stop this process with SIGHUP once the `mlflow run` above it has ended (a daemon
    thread; at most one per process). Nothing when `mlflow run` did not start it."""
    if not os.environ.get("MLFLOW_RUN_ID") or not hasattr(os, "pidfd_open"):
        return
    if any(thread.name == WATCHER for thread in threading.enumerate()):
        return
    pid = launcher()
    if pid is None:
        return
    try:
        handle = os.pidfd_open(pid)
    except OSError:  # it ended between finding and opening it
        os.kill(os.getpid(), signal.SIGHUP)
        return
    if not is_mlflow_run(_argv(pid)):  # ended (a zombie has no command line), or reused
        os.close(handle)
        os.kill(os.getpid(), signal.SIGHUP)
        return

    def wait() -> None:
        select.select([handle], [], [])
        os.kill(os.getpid(), signal.SIGHUP)

    threading.Thread(target=wait, name=WATCHER, daemon=True).start()


def running_launchers(store: str) -> list[int]:
    """Every `mlflow run` process alive on this machine that may record into `store` (an
    absolute tracking URI): its MLFLOW_TRACKING_URI, else MLflow's default in its working
    folder. One whose environment cannot be read counts."""
    if not PROC.is_dir():
        return []
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and is_mlflow_run(_argv(int(entry.name))):
            uri = _store_of(int(entry.name))
            if uri is None or uri == store:
                found.append(int(entry.name))
    return found


def _store_of(pid: int) -> str | None:
    """The tracking store `mlflow run` process `pid` records into; None when unknown."""
    try:
        raw = (PROC / str(pid) / "environ").read_bytes()
        cwd = (PROC / str(pid) / "cwd").resolve(strict=True)
    except OSError:
        return None
    variables = dict(
        part.decode(errors="replace").split("=", 1) for part in raw.split(b"\0") if b"=" in part
    )
    uri = variables.get("MLFLOW_TRACKING_URI") or DEFAULT_STORE
    return store_uri(uri, cwd)
