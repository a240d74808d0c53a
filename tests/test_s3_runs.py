"""Runs whose artifacts, model and outputs live in a real S3 server (SeaweedFS).

In-process runs check what lands where; subprocess runs check the failure stories:
the store hangs (the run waits, bounded), the store goes down (files stay in the spool,
`sync` stores them later) and the process is killed mid-upload (`sync` recovers).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_breast_cancer

from logistic_regression import inspection, train

S3_RUN = ["storage=s3", "storage.bucket=kit", "tracking.experiment_name=s3-runs"]


@pytest.fixture
def cancer_in_s3(s3_env):
    body = load_breast_cancer(as_frame=True).frame.to_csv(index=False).encode()
    s3_env.client().put_object(Bucket="kit", Key="data/cancer.csv", Body=body)
    return "s3://kit/data/cancer.csv"


def s3_bytes(server, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return server.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def only_run(experiment: str):
    experiment_id = MlflowClient().get_experiment_by_name(experiment).experiment_id
    (run,) = MlflowClient().search_runs([experiment_id])
    return run


def test_everything_a_run_writes_lands_in_s3(s3_env, cancer_in_s3, tmp_path, capsys):
    code = train.main([*S3_RUN, f"data.input={cancer_in_s3}", "data.output=s3://kit/exports/"])
    assert code == 0, capsys.readouterr().err
    run = only_run("s3-runs")
    client = MlflowClient()
    root = run.info.artifact_uri
    assert root.startswith("s3://kit/mlflow/s3-runs/")
    assert run.info.status == "FINISHED"
    assert run.data.tags["kit.artifacts"] == "complete"
    stored = {a.path: a.file_size for a in client.list_artifacts(run.info.run_id)}
    for name in ("report.html", "config.yaml", "environment.txt", "predictions.csv"):
        assert stored[name] == len(s3_bytes(s3_env, f"{root}/{name}")) > 0
    assert b"<html" in s3_bytes(s3_env, f"{root}/report.html")

    output = run.data.params["output_path"]
    assert output == f"s3://kit/exports/{run.info.run_id}/predictions.csv"
    assert s3_bytes(s3_env, output) == s3_bytes(s3_env, f"{root}/predictions.csv")
    assert run.data.params["input_path"] == cancer_in_s3 and run.data.params["input_etag"]

    (model,) = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert str(model.status) == "READY"
    assert model.artifact_location.startswith("s3://kit/mlflow/s3-runs/")
    assert s3_bytes(s3_env, f"{model.artifact_location}/MLmodel").startswith(b"artifact_path")
    loaded = mlflow.pyfunc.load_model(f"models:/{model.model_id}")
    features = load_breast_cancer(as_frame=True).data.head(3)
    assert list(loaded.predict(features)) == [0, 0, 0]

    tree = inspection.run_tree(run.info.run_id)
    assert "report.html" in tree and "kB" in tree
    secrets = (s3_env.secret_key,)
    logged = (
        str(run.data.params) + str(run.data.tags) + s3_bytes(s3_env, f"{root}/report.html").decode()
    )
    assert not any(secret in logged for secret in secrets)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["storage.bucket=no-such-bucket"], "s3://no-such-bucket: the bucket does not exist"),
        (["data.output=s3://missing-out/p/"], "s3://missing-out: the bucket does not exist"),
        (["storage.bucket=s3://kit"], "storage.bucket='s3://kit' is not allowed"),
    ],
)
def test_bad_stores_are_refused_before_any_run(s3_env, overrides, expected, capsys):
    assert train.main([*S3_RUN, *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1
    assert MlflowClient().get_experiment_by_name("s3-runs") is None


def test_wrong_credentials_are_refused_without_echoing_them(s3_env, monkeypatch, capsys):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-key")
    assert train.main(S3_RUN) == 2
    err = capsys.readouterr().err.strip()
    assert "access denied" in err and len(err.splitlines()) == 1
    assert "not-the-secret-key" not in err and s3_env.secret_key not in err
    assert MlflowClient().get_experiment_by_name("s3-runs") is None


def test_an_experiment_stored_locally_is_not_silently_used_for_s3(s3_env, capsys):
    MlflowClient().create_experiment("s3-runs")
    assert train.main(S3_RUN) == 2
    err = capsys.readouterr().err
    assert "stores artifacts at" in err and "not under s3://kit/mlflow/s3-runs" in err
    assert not MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("s3-runs").experiment_id]
    )


# -- the failure stories, with the training in its own process ---------------------------


def start_training(tmp_path: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "logistic_regression.train", *S3_RUN, *overrides],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_journal(spool: Path, process: subprocess.Popen, event: str, timeout=120) -> Path:
    """The run's spool folder once its journal holds `event` (`model` = all queued)."""
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


@pytest.mark.e2e
def test_the_run_ends_only_after_its_uploads_are_stored(private_s3, tmp_path, monkeypatch):
    spool = tmp_path / "spool"
    process = start_training(tmp_path)
    try:
        wait_for_journal(spool, process, "run")
        private_s3.freeze()  # every upload now hangs
        wait_for_journal(spool, process, "model")  # training is over, the flush has begun
        time.sleep(1.0)
        run = only_run("s3-runs")
        assert process.poll() is None, "the process may not end while uploads are unverified"
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


@pytest.mark.e2e
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


@pytest.mark.e2e
def test_sigkill_during_upload_is_recovered_by_concurrent_syncs(private_s3, tmp_path):
    spool = tmp_path / "spool"
    process = start_training(tmp_path)
    try:
        wait_for_journal(spool, process, "run")
        private_s3.freeze()
        folder = wait_for_journal(spool, process, "model")
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
