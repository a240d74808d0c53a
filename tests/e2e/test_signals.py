"""Signals sent to a real training process, as a terminal (Ctrl-C: SIGINT to the whole
process group), a job scheduler or CI (SIGTERM) and a closed terminal (SIGHUP) send
them: the run ends KILLED with the reason in `kit.error`, files not yet stored stay in
the spool for `sync`, one line goes to stderr, and the exit code is 128 + the signal.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import PYTHON
from mlflow.tracking import MlflowClient
from servers import s3_bytes
from test_s3_failures import S3_RUN, snapshots, wait_for_journal


@pytest.fixture(scope="module")
def slow_data(tmp_path_factory) -> Path:
    """A table large enough that training lasts seconds, so a signal lands inside it."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60_000, 20))
    frame = pd.DataFrame(features, columns=[f"f{i}" for i in range(20)])
    frame["target"] = (features[:, 0] + rng.normal(size=len(frame)) > 0).astype(int)
    path = tmp_path_factory.mktemp("signals") / "slow.csv"
    frame.to_csv(path, index=False)
    return path


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    """A command in its own process group, so that a signal can reach all of it."""
    return subprocess.Popen(
        args,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def signal_group(process: subprocess.Popen, signum: int) -> tuple[str, str]:
    """Send `signum` to the process's whole group, as a terminal does; its output."""
    os.killpg(process.pid, signum)
    try:
        return process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        name = signal.Signals(signum).name
        raise AssertionError(f"the process did not end after {name}") from None


def kit_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def runs_of(experiment: str):
    found = MlflowClient().get_experiment_by_name(experiment)
    return MlflowClient().search_runs([found.experiment_id]) if found else []


def assert_all_gone(process: subprocess.Popen, spool: Path) -> None:
    """No worker (the process's group) or uploader (its own group, named by the spool
    folder it serves) outlives the run."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            if not uploaders(spool):
                return
        time.sleep(0.1)
    raise AssertionError(f"processes of the stopped run still alive: {uploaders(spool)}")


def uploaders(spool: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(spool).encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_during_training_ends_the_run_killed(signum, slow_data, tmp_path):
    process = start(
        [
            PYTHON,
            "-m",
            "logistic_regression.train",
            f"data.input={slow_data}",
            "data.target=target",
            "tracking.experiment_name=signals",
        ],
        tmp_path,
    )
    wait_for_journal(tmp_path / "spool", process, "run")  # the run is open, training starts
    _, err = signal_group(process, signum)
    name = signal.Signals(signum).name

    assert process.returncode == 128 + signum, err
    assert len(kit_lines(err)) == 1, err
    (line,) = kit_lines(err)
    assert line.startswith(f"error: interrupted by {name}; run ") and "ended KILLED" in line
    assert "Traceback" not in err
    (run,) = runs_of("signals")
    assert run.info.status == "KILLED"
    assert run.data.tags["kit.error"] == f"interrupted by {name}"
    assert run.info.run_id in line
    assert_all_gone(process, tmp_path / "spool")
    # Nothing had been logged yet: no spool folder is left for a `sync` that has nothing to do.
    assert not [p for p in (tmp_path / "spool").iterdir() if p.is_dir()]


ALL_STOP_SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]


@pytest.mark.parametrize("signum", ALL_STOP_SIGNALS)
def test_a_signal_before_the_run_exists_creates_no_run(signum, private_s3, tmp_path):
    """Reading the input from a store that hangs: the process is still in its data step."""
    private_s3.client().put_object(Bucket="kit", Key="data.csv", Body=b"a,target\n1,0\n2,1\n")
    private_s3.freeze()
    try:
        process = start(
            [
                PYTHON,
                "-m",
                "logistic_regression.train",
                "data.input=s3://kit/data.csv",
                "data.target=target",
                "tracking.experiment_name=signals",
            ],
            tmp_path,
        )
        time.sleep(8)  # imported and waiting for the input (a first line would be an error)
        assert process.poll() is None, process.communicate()
        _, err = signal_group(process, signum)
    finally:
        private_s3.thaw()
    assert process.returncode == 128 + signum, err
    assert kit_lines(err) == [f"error: interrupted by {signal.Signals(signum).name}"]
    assert runs_of("signals") == []
    assert not (tmp_path / "spool").exists() or not list((tmp_path / "spool").iterdir())


@pytest.mark.parametrize("signum", ALL_STOP_SIGNALS)
def test_a_signal_during_the_upload_keeps_the_files_for_sync(signum, private_s3, tmp_path):
    spool = tmp_path / "spool"
    process = start(
        [PYTHON, "-m", "logistic_regression.train", *S3_RUN, "tracking.experiment_name=signals"],
        tmp_path,
    )
    try:
        wait_for_journal(spool, process, "run")
        private_s3.freeze()  # every upload now hangs
        folder = wait_for_journal(spool, process, "sealed")  # all logged: the flush waits
        _, err = signal_group(process, signum)
    finally:
        private_s3.thaw()

    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum, err
    (line,) = kit_lines(err)
    assert f"interrupted by {name}" in line and str(folder) in line and "sync" in line
    (run,) = runs_of("signals")
    assert run.info.status == "KILLED" and run.data.tags["kit.error"] == f"interrupted by {name}"
    kept = snapshots(folder)
    assert any(uri.endswith("/report.html") for uri in kept)

    done = subprocess.run(
        [sys.executable, "-m", "logistic_regression", "sync"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for uri, content in kept.items():
        assert s3_bytes(private_s3, uri) == content, uri
    (run,) = runs_of("signals")
    assert run.info.status == "KILLED"  # stored now, but the run was still stopped early
    assert run.data.tags["kit.artifacts"] == "complete"
    assert not folder.exists()


def test_ctrl_c_on_mlflow_run_leaves_a_reason_and_no_spool(kit_repo, slow_data, tmp_path):
    process = start(
        [
            PYTHON,
            "-m",
            "mlflow",
            "run",
            str(kit_repo),
            "--env-manager",
            "local",
            "--experiment-name",
            "signals",
            "-P",
            f"input={slow_data}",
            "-P",
            "target=target",
        ],
        tmp_path,
    )
    wait_for_journal(tmp_path / "spool", process, "run", timeout=300)
    _, err = signal_group(process, signal.SIGINT)

    assert process.returncode != 0
    assert "Fatal Python error" not in err and "Traceback" not in err
    assert "error: interrupted by SIGINT; run " in err
    (run,) = runs_of("signals")
    # MLflow marks the run FAILED after any non-zero exit (even over the kit's KILLED),
    # so the reason in kit.error is what says it was interrupted.
    assert run.info.status in ("KILLED", "FAILED")
    assert run.data.tags["kit.error"] == "interrupted by SIGINT"
    assert not [p for p in (tmp_path / "spool").iterdir() if p.is_dir()]
    assert_all_gone(process, tmp_path / "spool")


def mlflow_run_args(kit_repo: Path, slow_data: Path) -> list[str]:
    return [
        PYTHON, "-m", "mlflow", "run", str(kit_repo), "--env-manager", "local",
        "--experiment-name", "signals", "-P", f"input={slow_data}", "-P", "target=target",
    ]  # fmt: skip


def ended(experiment: str, bound: float = 180):
    """The experiment's one run once it is no longer RUNNING (None if it stays so)."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        found = runs_of(experiment)
        if found and found[0].info.status != "RUNNING":
            return found[0]
        time.sleep(0.2)
    return None


def test_sigterm_to_mlflow_run_alone_while_the_kit_trains_ends_the_run_killed(
    kit_repo, slow_data, tmp_path
):
    """`kill <pid of mlflow run>`: MLflow has no handler and ends at once. The kit used to
    train on, orphaned, to FINISHED; it now hears SIGHUP and ends the run KILLED."""
    process = start(mlflow_run_args(kit_repo, slow_data), tmp_path)
    wait_for_journal(tmp_path / "spool", process, "run", timeout=300)
    os.kill(process.pid, signal.SIGTERM)  # mlflow run alone, not its group
    try:
        _, err = process.communicate(timeout=300)  # its pipes close when the kit ends too
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError("the kit did not end after mlflow run was stopped") from None
    assert process.returncode == -signal.SIGTERM
    run = ended("signals")
    assert run is not None and run.info.status == "KILLED", run
    assert run.data.tags["kit.error"] == "interrupted by SIGHUP"
    assert "Traceback" not in err
    assert_all_gone(process, tmp_path / "spool")


def test_a_run_mlflow_run_opened_and_never_handed_over_is_settled_by_sync(
    kit_repo, slow_data, tmp_path
):
    """SIGTERM to `mlflow run` after it created the run, before the kit started (here its
    shell never starts the kit, as while an environment is built): the run stayed RUNNING
    for good. `sync` leaves it while that `mlflow run` lives, and ends it KILLED after."""
    shell = tmp_path / "bin" / "bash"  # what `mlflow run` starts the entry point with
    shell.parent.mkdir()
    shell.write_text("#!/bin/sh\nexec sleep 600\n")
    shell.chmod(0o755)
    path = f"{shell.parent}{os.pathsep}{os.environ['PATH']}"
    process = subprocess.Popen(
        mlflow_run_args(kit_repo, slow_data), cwd=tmp_path, env={**os.environ, "PATH": path},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    sync = [PYTHON, "-m", "logistic_regression", "sync"]
    try:
        deadline = time.monotonic() + 300
        while not runs_of("signals") and time.monotonic() < deadline:
            time.sleep(0.2)
        (run,) = runs_of("signals")
        while_alive = subprocess.run(sync, cwd=tmp_path, capture_output=True, text=True)
        assert while_alive.returncode == 0, while_alive.stderr
        assert f"left RUNNING (mlflow run is running here (pid {process.pid})): " in (
            while_alive.stdout
        )
        assert runs_of("signals")[0].info.status == "RUNNING"

        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        after = subprocess.run(sync, cwd=tmp_path, capture_output=True, text=True)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the shell that never started the kit
    assert after.returncode == 0, after.stderr
    assert f"{run.info.run_id}: mlflow run was stopped before it started the kit" in after.stdout
    (settled,) = runs_of("signals")
    assert settled.info.status == "KILLED"
    assert settled.data.tags["kit.error"].startswith("mlflow run was stopped before")


def kit_started(marker: str) -> bool:
    """A process of the kit's main entry whose command line holds `marker` exists."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            words = cmdline.read_bytes().split(b"\0")
            if b"logistic_regression.mlproject" in words and marker.encode() in words:
                return True
    return False


@pytest.mark.parametrize("delay", ["at-exec", 0.3, 1.0, 1.7])
def test_ctrl_c_on_mlflow_run_while_the_kit_starts_is_one_line_and_no_run_left_running(
    kit_repo, slow_data, tmp_path, delay
):
    """Ctrl-C (SIGINT to the group) moments after `mlflow run` started the kit, while it
    imports Hydra and MLflow: a 70-line traceback (`partially initialized module
    'mlflow'`) and no kit.error, or a run left RUNNING. Now one line at most, and
    after `sync` no run is RUNNING. `at-exec`: the moment the kit's interpreter exists,
    inside Python's own start-up (where it was `Fatal Python error: init_import_site`)."""
    process = start(mlflow_run_args(kit_repo, slow_data), tmp_path)
    deadline = time.monotonic() + 300
    if delay == "at-exec":
        while not kit_started(str(slow_data)) and time.monotonic() < deadline:
            time.sleep(0.005)
    else:
        while not runs_of("signals") and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(delay)
    _, err = signal_group(process, signal.SIGINT)
    assert "Traceback" not in err and "partially initialized" not in err, err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) <= 1, err
    subprocess.run([PYTHON, "-m", "logistic_regression", "sync"], cwd=tmp_path, check=True)
    (run,) = runs_of("signals")
    assert run.info.status != "RUNNING"
    # SIGINT, or SIGHUP: `mlflow run` stopped, the kit stopped with it (launcher.py)
    assert run.data.tags.get("kit.error", "").startswith(("interrupted by SIG", "mlflow run")), (
        run.info.status,
        err,
    )


# A kit process under `mlflow run`: it prints "HUP" once the watch on the launcher stops
# it with SIGHUP (cli turns that into a KILLED run), within 20 s; else "running".
WATCHED = """
import signal, sys, threading
from logistic_regression import launcher
heard = threading.Event()
signal.signal(signal.SIGHUP, lambda *_: heard.set())
launcher.watch_launcher()
print("HUP" if heard.wait(20) else "running", flush=True)
"""


@pytest.mark.parametrize("launcher_state", ["reaped", "zombie", "pid-reused", "alive-then-ends"])
def test_the_kit_stops_when_the_mlflow_run_it_names_is_gone_even_before_it_watched(
    tmp_path, launcher_state
):
    """`mlflow run` ended before the kit started watching it (a Ctrl-C at the kit's exec):
    the kit, reparented, no longer found it above itself and ran on to FINISHED. MLproject
    names `mlflow run`'s pid (LOGREG_LAUNCHER_PID=$PPID), so the kit stops with SIGHUP
    whether that process is reaped, a zombie or its pid reused; a live one is watched."""
    code = "import time; time.sleep(120)"
    named = subprocess.Popen(
        {
            "reaped": ["true"],
            "zombie": ["true"],
            "pid-reused": [PYTHON, "-c", code],  # alive, but not `mlflow run`
            "alive-then-ends": [PYTHON, "-c", code, "mlflow", "run", "."],
        }[launcher_state]
    )
    try:
        if launcher_state == "reaped":
            named.wait()
        elif launcher_state == "zombie":
            deadline = time.monotonic() + 60
            while Path(f"/proc/{named.pid}/cmdline").read_bytes() and time.monotonic() < deadline:
                time.sleep(0.05)
        env = {**os.environ, "MLFLOW_RUN_ID": "r" * 32, "LOGREG_LAUNCHER_PID": str(named.pid)}
        kit = subprocess.Popen([PYTHON, "-c", WATCHED], env=env, stdout=subprocess.PIPE, text=True)
        if launcher_state == "alive-then-ends":
            time.sleep(1)
            assert kit.poll() is None, "a live mlflow run is watched, not a reason to stop"
            named.kill()
            named.wait()
        out, _ = kit.communicate(timeout=60)
    finally:
        named.kill()
        named.wait()
    assert out.strip() == "HUP"
