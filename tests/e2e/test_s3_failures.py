"""Runs whose artifacts live in a real S3 server (SeaweedFS), with the training in its own
process: the store hangs (the run waits, bounded), the store goes down (files stay in the
spool, `sync` stores them later) and the process is killed mid-upload (`sync` recovers).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from servers import s3_bytes

S3_RUN = ["storage=s3", "storage.bucket=kit", "tracking.experiment_name=s3-runs"]


def only_run(experiment: str):
    experiment_id = MlflowClient().get_experiment_by_name(experiment).experiment_id
    (run,) = MlflowClient().search_runs([experiment_id])
    return run


def start_training(tmp_path: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "logistic_regression.train", *S3_RUN, *overrides],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_journal(spool: Path, process: subprocess.Popen, event: str, timeout=120) -> Path:
    """The run's spool folder once its journal holds `event` (`sealed` = all queued)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for journal in spool.glob("*/journal.jsonl"):
            if any(json.loads(line).get("event") == event for line in _lines(journal)):
                return journal.parent
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no {event!r} in the spool journal after {timeout}s")


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.endswith("}")]


def snapshots(folder: Path) -> dict[str, bytes]:
    """Destination URI -> bytes of every file the journal lists."""
    entries = [json.loads(line) for line in _lines(folder / "journal.jsonl")]
    return {
        f"{e['root'].rstrip('/')}/{e['path']}": (folder / e["source"]).read_bytes()
        for e in entries
        if e["event"] == "queued"
    }


def sync(tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "logistic_regression", "sync"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_run_ends_only_after_its_uploads_are_stored(private_s3, tmp_path, monkeypatch):
    spool = tmp_path / "spool"
    process = start_training(tmp_path)
    try:
        wait_for_journal(spool, process, "run")
        private_s3.freeze()  # every upload now hangs
        wait_for_journal(spool, process, "sealed")  # training is over, the flush has begun
        with pytest.raises(subprocess.TimeoutExpired):  # it may not end while uploads hang
            process.wait(timeout=2)
        run = only_run("s3-runs")
        assert run.info.status == "RUNNING"
        assert run.data.metrics["test_roc_auc"] > 0.9
        assert run.data.tags["kit.artifacts"] == "pending"
    finally:
        private_s3.thaw()
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    run = only_run("s3-runs")
    assert run.info.status == "FINISHED" and run.data.tags["kit.artifacts"] == "complete"
    assert (
        s3_bytes(private_s3, f"{run.info.artifact_uri}/report.html")
        .lower()
        .startswith(b"<!doctype")
    )


def test_a_store_outage_keeps_every_file_and_sync_stores_it(private_s3, kit_repo, tmp_path):
    spool = tmp_path / "spool"
    process = start_training(tmp_path, "storage.flush_timeout_s=5", "storage.retry.max_attempts=2")
    wait_for_journal(spool, process, "run")
    private_s3.freeze()
    private_s3.stop()  # the store goes down in the middle of the run
    out, err = process.communicate(timeout=300)
    assert process.returncode == 2
    assert "artifacts not stored" in err and "python -m logistic_regression sync" in err
    assert len([line for line in err.splitlines() if "error" in line.lower()]) == 1
    assert "Traceback" not in err

    run = only_run("s3-runs")
    assert run.info.status == "FAILED"
    assert run.data.tags["kit.artifacts"] == "pending"
    assert "report.html" in run.data.tags["kit.artifacts_pending"]
    (folder,) = [p for p in spool.iterdir() if p.is_dir()]
    kept = snapshots(folder)
    assert any(uri.endswith("/MLmodel") for uri in kept) and len(kept) >= 10

    private_s3.start()
    # The `sync` MLproject entry point, as a user of `mlflow run` would call it.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlflow",
            "run",
            str(kit_repo),
            "-e",
            "sync",
            "--env-manager",
            "local",
            "--experiment-name",
            "maintenance",
            "-P",
            f"spool_dir={spool}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "files uploaded and verified" in done.stdout
    for uri, content in kept.items():
        assert s3_bytes(private_s3, uri) == content, uri
    run = only_run("s3-runs")
    assert run.info.status == "FINISHED"
    assert run.data.tags["kit.artifacts"] == "complete"
    assert "kit.artifacts_pending" not in run.data.tags and "kit.error" not in run.data.tags
    (model,) = MlflowClient().search_logged_models(experiment_ids=[run.info.experiment_id])
    assert str(model.status) == "READY"
    assert not folder.exists()


def test_sigkill_during_upload_is_recovered_by_concurrent_syncs(private_s3, tmp_path):
    spool = tmp_path / "spool"
    process = start_training(tmp_path)
    try:
        wait_for_journal(spool, process, "run")
        private_s3.freeze()
        folder = wait_for_journal(spool, process, "sealed")  # every file queued: the flush
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
        kept = snapshots(folder)
        copy = tmp_path / "spool-copy"
        shutil.copytree(folder, copy)
    finally:
        private_s3.thaw()

    first, second = sync(tmp_path), sync(tmp_path)  # twice, at the same time
    results = [first.communicate(timeout=300), second.communicate(timeout=300)]
    assert first.returncode == 0 and second.returncode == 0, results
    for uri, content in kept.items():
        assert s3_bytes(private_s3, uri) == content, uri
    run = only_run("s3-runs")
    assert run.info.status == "KILLED"
    assert run.data.tags["kit.artifacts"] == "complete"
    assert "sync stored its artifacts" in run.data.tags["kit.error"]
    again = sync(tmp_path)
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0 and "nothing to sync" in out


def test_sigterm_stops_a_sync_whose_upload_hangs_and_keeps_the_files(private_s3, tmp_path):
    """`sync` uploading to a store that stopped answering (frozen): a SIGTERM ends it
    within a bound (it waited for boto3's read timeouts, minutes), files kept; the next
    `sync` stores them all once the store is back."""
    from filelock import FileLock, Timeout

    spool = tmp_path / "spool"
    process = start_training(tmp_path)
    try:
        wait_for_journal(spool, process, "run")
        private_s3.freeze()
        folder = wait_for_journal(spool, process, "sealed")
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
        kept = snapshots(folder)
        syncing = sync(tmp_path)
        deadline = time.monotonic() + 120
        while True:  # the sync holds the folder: its uploads are under way, and hang
            try:
                FileLock(str(folder / ".lock")).acquire(timeout=0).lock.release()
            except Timeout:
                break
            assert syncing.poll() is None, syncing.communicate()
            assert time.monotonic() < deadline, "the sync never took the folder"
            time.sleep(0.05)
        time.sleep(1.0)
        syncing.send_signal(signal.SIGTERM)
        try:
            _, err = syncing.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            syncing.kill()
            syncing.communicate()
            raise AssertionError("sync was still running 60 s after SIGTERM") from None
        assert syncing.returncode == 128 + signal.SIGTERM, err
        assert "Traceback" not in err
        assert snapshots(folder) == kept, "the files are kept"
    finally:
        private_s3.thaw()
    again = sync(tmp_path)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, out + err
    for uri, content in kept.items():
        assert s3_bytes(private_s3, uri) == content, uri
