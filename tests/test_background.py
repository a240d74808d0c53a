"""The background workers are forked only from a single-threaded process, release the
thread pools right after, serve every later run, and die with the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from conftest import PROJECT, fresh_environment, last_json_line

from logistic_regression import environment

# A fresh interpreter importing the kit as its entry points do: the package first.
PROBE = textwrap.dedent(
    """
    import json, os, sys
    {first_import}
    from logistic_regression import environment
    environment.hold_thread_pools()  # as a command does, first
    import logistic_regression.pipeline  # everything a run imports
    from threadpoolctl import threadpool_info
    from logistic_regression.background import Background, shared_pool, thread_count

    def identity():
        return os.getpid(), os.getppid()

    if __name__ == "__main__":
        before = thread_count()
        # Straight to the pool: Background.submit's result() may do a task still queued
        # itself, and these tasks must show where the pool runs them.
        def on_pool():
            pool = shared_pool()
            return tuple(pool.submit(identity).result()) if pool else identity()

        with Background():
            first = on_pool()
        with Background():  # a second run of the same process
            second = on_pool()
        print(json.dumps({{
            "pid": os.getpid(),
            "threads_before": before,
            "first": first,
            "second": second,
            "blas_threads": sorted({{i["num_threads"] for i in threadpool_info()
                                    if i["user_api"] == "blas"}}),
            "held": os.environ.get("OPENBLAS_NUM_THREADS"),
        }}), flush=True)
        if "--wait" in sys.argv:
            sys.stdin.read()
    """
)


def probe(tmp_path: Path, first_import: str = "", *args: str, **popen) -> subprocess.Popen:
    script = tmp_path / "probe.py"
    script.write_text(PROBE.format(first_import=first_import))
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
        env=fresh_environment(),
        **popen,
    )


def report_of(process: subprocess.Popen) -> dict:
    line = process.stdout.readline()
    assert line, "the probe printed nothing"
    return json.loads(line)


def test_workers_are_forked_single_threaded_then_training_gets_every_core(tmp_path):
    process = probe(tmp_path)
    found = report_of(process)
    process.communicate(timeout=120)
    assert found["threads_before"] == 1  # fork happened in a single-threaded process
    worker, parent = found["first"]
    assert worker != found["pid"] and parent == found["pid"]
    assert found["second"][0] != found["pid"] and found["second"][1] == parent  # same pool
    cores = len(os.sched_getaffinity(0))
    assert found["blas_threads"] == [cores]  # the limits are lifted for training
    assert found["held"] is None  # and no longer passed on to the processes it starts


def test_a_process_that_already_runs_threads_works_inline(tmp_path):
    process = probe(tmp_path, "import numpy  # before the kit: OpenBLAS starts its threads")
    found = report_of(process)
    process.communicate(timeout=120)
    assert found["threads_before"] > 1
    assert found["first"][0] == found["pid"] and found["second"][0] == found["pid"]


def test_the_user_s_own_thread_settings_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    script = tmp_path / "own.py"
    script.write_text(
        "import os\n"
        "from logistic_regression import environment\n"
        "environment.hold_thread_pools()\n"
        "import logistic_regression.pipeline\n"
        "from logistic_regression.background import Background\n"
        "from threadpoolctl import threadpool_info\n"
        "with Background():\n"
        "    pass\n"
        "print(os.environ.get('OPENBLAS_NUM_THREADS'),"
        " sorted({i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'}))\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
    )
    assert done.stdout.split() == ["1", "[1]"], done.stderr


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie is dead, only not yet reaped


def test_a_sigkilled_run_leaves_no_worker_behind(tmp_path):
    process = probe(tmp_path, "", "--wait")
    try:
        found = report_of(process)
        workers = {found["first"][0], found["second"][0]}
        assert found["pid"] not in workers and all(alive(pid) for pid in workers)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    deadline = time.monotonic() + 60  # generous: only a bound on waiting, not a measurement
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if alive(pid)]


def test_processes_the_kit_starts_never_inherit_its_own_thread_limits(tmp_path):
    """Before its workers exist (or in a command that never trains: reproduce, sync, the
    server), the kit's limits stay out of the processes it starts; a user's stay in."""
    script = tmp_path / "child_env.py"
    script.write_text(
        "import json, os\n"
        "from logistic_regression import environment\n"
        "environment.hold_thread_pools()\n"
        "child = environment.for_child({'EXTRA': 'x'})\n"
        "print(json.dumps([os.environ.get('OMP_NUM_THREADS'),"
        " child.get('OMP_NUM_THREADS'), child.get('OPENBLAS_NUM_THREADS'), child['EXTRA']]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in environment.THREAD_POOL_VARIABLES}
    env.update(PYTHONPATH=str(PROJECT), OPENBLAS_NUM_THREADS="3")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env
    )
    assert json.loads(done.stdout) == ["1", None, "3", "x"], done.stderr


STEAL = textwrap.dedent(
    """
    import functools, json, os, sys, time
    from pathlib import Path
    from logistic_regression import environment
    environment.hold_thread_pools()  # as a command does, first
    import logistic_regression.pipeline  # everything a run imports
    from logistic_regression.background import Background, shared_pool

    def blocked(release):
        deadline = time.monotonic() + 120  # a bound, not a measurement
        while not Path(release).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return os.getpid()

    if __name__ == "__main__":
        # The warm-up holds the one worker, as the chart library's import does at the
        # start of a run; the task right behind it is wanted before the worker is free.
        with Background(functools.partial(blocked, sys.argv[1])) as workers:
            queued = workers.submit(os.getpid)
            time.sleep(1.0)  # the run goes on meanwhile; the pool has had time to hand it on
            here = queued()
            Path(sys.argv[1]).touch()
            worker = shared_pool().submit(os.getpid).result()  # a pool exists
            print(json.dumps({"pid": os.getpid(), "queued": here, "worker": worker}))
    """
)


def test_a_task_still_queued_when_its_result_is_wanted_runs_in_the_caller(tmp_path):
    found, stderr = last_json_line(tmp_path / "steal.py", STEAL, str(tmp_path / "release"))
    # The worker is held until after the result came: only the caller can have done it
    # (ProcessPoolExecutor alone would have passed the task to the worker's queue).
    assert found["worker"] != found["pid"], "no worker: everything ran inline"
    assert found["queued"] == found["pid"], stderr


DEATH = textwrap.dedent(
    """
    import json, os
    from logistic_regression import environment
    environment.hold_thread_pools()  # as a command does, first
    import logistic_regression.pipeline  # everything a run imports
    from logistic_regression.background import Background, shared_pool

    def exit_in_worker(parent):
        if os.getpid() != parent:
            os._exit(3)  # the worker dies, as an out-of-memory kill would end it
        return "redone here"

    if __name__ == "__main__":
        with Background() as workers:
            worker = shared_pool().submit(os.getpid).result()  # a pool exists
            died = workers.submit(exit_in_worker, os.getpid())
            waiting = workers.submit(os.getpid)  # held behind it when it dies
            print(json.dumps({"pid": os.getpid(), "worker": worker, "died": died(),
                              "waiting": waiting()}), flush=True)
    """
)


def test_a_worker_that_dies_leaves_no_task_hanging_and_the_caller_does_them(tmp_path):
    """The pool breaks with a task still held behind the dead one: both are done here
    (the task that killed its worker once more, in the caller), nothing waits forever."""
    found, stderr = last_json_line(tmp_path / "death.py", DEATH)
    assert found["worker"] != found["pid"], "no worker: everything ran inline"
    assert found["died"] == "redone here" and found["waiting"] == found["pid"], stderr
