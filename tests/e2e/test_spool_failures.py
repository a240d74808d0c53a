"""Spool failures with the kit in its own processes: a training process SIGKILLed (the
next commands say so, `sync` ends the run KILLED) and a spool disk that fills during a
real run (a real tmpfs; needs root to mount, skipped elsewhere).

Each case checks the run's status and tags, the spool folder, the exit codes, one line
on stderr and no traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from conftest import PYTHON, run_command
from mlflow.tracking import MlflowClient
from servers import fill_disk, tmpfs

SYNC_HINT = "python -m logistic_regression sync"


def start_training(tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    import os

    return subprocess.Popen(
        [sys.executable, "-m", "logistic_regression.train"],
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_journal(spool: Path, process: subprocess.Popen, event: str, timeout=120) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for journal in spool.glob("*/journal.jsonl"):
            lines = [line for line in journal.read_text().splitlines() if line.endswith("}")]
            if any(json.loads(line).get("event") == event for line in lines):
                return journal.parent
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise AssertionError(f"no {event!r} in the spool journal after {timeout}s")


def one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_a_sigkilled_run_is_noticed_by_the_next_commands_and_ended_by_sync(tmp_path):
    spool = tmp_path / "spool"
    process = start_training(tmp_path)
    folder = wait_for_journal(spool, process, "run")
    run_id, client = folder.name, MlflowClient()
    while "kit.artifacts" not in client.get_run(run_id).data.tags:  # training has begun
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    process.kill()  # SIGKILL: nothing in the process runs any more
    process.communicate(timeout=60)
    killed = client.get_run(run_id)
    assert killed.info.status == "RUNNING" and killed.data.tags["kit.artifacts"] == "pending"

    inspected = run_command([PYTHON, "-m", "logistic_regression", "inspect", run_id], tmp_path)
    assert inspected.returncode == 0, inspected.stderr
    notice = one_line(inspected.stderr)
    assert notice.startswith("warning: 1 run(s) of this tracking store were left unsettled")
    assert run_id in notice and SYNC_HINT in notice
    assert f"run {run_id}" in inspected.stdout

    trained = run_command([PYTHON, "-m", "logistic_regression.train"], tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert one_line(trained.stderr) == notice
    assert [p.name for p in spool.iterdir()] == [run_id], "the new run's folder is gone"

    synced = run_command([PYTHON, "-m", "logistic_regression", "sync"], tmp_path)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert synced.stderr == ""
    assert f"run {run_id}: artifacts none, status KILLED" in synced.stdout
    ended = client.get_run(run_id)
    assert ended.info.status == "KILLED"
    assert ended.data.tags["kit.artifacts"] == "none"
    assert "kit.artifacts_pending" not in ended.data.tags
    error = ended.data.tags["kit.error"]
    assert error.startswith("the run's process ended without ending the run (pid ")
    assert error.endswith("it had logged no artifacts")
    assert not folder.exists()

    again = run_command([PYTHON, "-m", "logistic_regression", "inspect", run_id], tmp_path)
    assert again.returncode == 0 and again.stderr == ""


def test_a_spool_disk_that_fills_during_a_run_keeps_the_folder(tmp_path):
    with tmpfs(tmp_path / "disk", "16m") as disk:
        process = start_training(tmp_path, {"LOGREG_SPOOL_DIR": str(disk)})
        folder = wait_for_journal(disk, process, "run")
        filler = fill_disk(disk)  # another program takes the whole disk
        out, err = process.communicate(timeout=300)
        line = one_line(err)
        assert process.returncode == 2
        assert line.startswith("error: the spool's disk is full: ")
        assert "the model needs " in line and "0 B is free: " in line and " missing; " in line
        assert f"this run's files are kept in {folder}" in line
        run = MlflowClient().get_run(folder.name)
        assert run.info.status == "FAILED"
        assert "the spool's disk is full: the model needs" in run.data.tags["kit.error"]
        assert run.data.tags["kit.artifacts"] == "none"
        assert (folder / "journal.jsonl").is_file()

        filler.unlink()
        synced = run_command(
            [PYTHON, "-m", "logistic_regression", "sync"], tmp_path, {"LOGREG_SPOOL_DIR": str(disk)}
        )
        assert synced.returncode == 0 and synced.stderr == "", synced.stdout + synced.stderr
        assert f"run {folder.name}: artifacts none, status FAILED" in synced.stdout
        run = MlflowClient().get_run(folder.name)
        assert run.info.status == "FAILED" and run.data.tags["kit.artifacts"] == "none"
        assert not folder.exists()
