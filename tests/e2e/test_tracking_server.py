"""The team setup end to end: `scripts/start_mlflow.sh` starts a real `mlflow server`
whose artifacts live in a real S3 server (SeaweedFS); `mlflow run` records through it
with no S3 credentials of its own; the script reports status, refuses a taken port and
stops the server by its PID."""

from __future__ import annotations

import os
import subprocess

from conftest import PROJECT, PYTHON, new_store
from mlflow.tracking import MlflowClient
from servers import free_port

SCRIPT = PROJECT / "scripts" / "start_mlflow.sh"
JOBS_OFF = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        # MLflow 3's server also starts a job runner and seven Huey consumers (for GenAI
        # jobs the kit never uses): eight more Python processes on two cores.
        env={**os.environ, "PYTHON": PYTHON, **JOBS_OFF, **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_team_server_records_runs_and_stores_artifacts_in_s3(
    s3_env, kit_repo, tmp_path, migrated_store
):
    port = str(free_port())
    settings = [
        "--port",
        port,
        f"state_dir={tmp_path / 'server-state'}",
        # An already migrated store, as a team's server has after its first start.
        f"backend_store_uri={new_store(migrated_store, tmp_path / 'server.db')}",
        "artifacts_destination=s3://kit/team",
        "workers=1",  # two cores: the second worker only slows the start down
    ]
    started = script("--background", *settings)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"http://127.0.0.1:{port}" in started.stdout
        assert script("--status", *settings).returncode == 0

        taken = script("--background", "--port", port, f"state_dir={tmp_path / 'other'}")
        assert taken.returncode == 2
        assert f"port {port} on 127.0.0.1 is already in use" in taken.stderr
        assert len(taken.stderr.strip().splitlines()) == 1

        # The client has the server's URL and nothing else: no S3 keys, no endpoint.
        client_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
        client_env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{port}"
        done = subprocess.run(
            [
                PYTHON,
                "-m",
                "mlflow",
                "run",
                str(kit_repo),
                "--env-manager",
                "local",
                "--experiment-name",
                "team",
                "-P",
                "C=0.5",
                "-P",
                "note=through the server",
            ],
            cwd=tmp_path,
            env=client_env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]

        client = MlflowClient(f"http://127.0.0.1:{port}")
        experiment = client.get_experiment_by_name("team")
        (run,) = client.search_runs([experiment.experiment_id])
        assert run.info.status == "FINISHED"
        assert run.data.params["model.C"] == "0.5"
        assert run.data.tags["mlflow.note.content"] == "through the server"
        assert run.data.tags["kit.artifacts"] == "complete"
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")
        listed = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"report.html", "config.yaml", "environment.txt"} <= listed

        keys = [
            item["Key"]
            for page in s3_env.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket="kit", Prefix="team/")
            for item in page.get("Contents", [])
        ]
        assert any(k.endswith(f"{run.info.run_id}/artifacts/report.html") for k in keys)
        assert any(k.endswith("/artifacts/MLmodel") for k in keys), "the model is in S3 too"
        (model,) = client.search_logged_models(experiment_ids=[experiment.experiment_id])
        assert str(model.status) == "READY"
    finally:
        stopped = script("--stop", *settings)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert script("--status", *settings).returncode == 3
    assert not (tmp_path / "server-state" / "server.pid").exists()


def test_a_server_that_does_not_come_up_is_reported_in_one_line(tmp_path):
    port = str(free_port())
    settings = ["--port", port, f"state_dir={tmp_path / 'state'}", "health_timeout_s=60"]
    failed = script("--background", *settings, "backend_store_uri=nosuchdb://nowhere")
    assert failed.returncode == 2
    err = failed.stderr.strip()
    assert len(err.splitlines()) == 1, err
    # The cause from the server's log, not the shutdown line that ends it.
    assert "exited with code 1" in err and "unsupported URI 'nosuchdb://nowhere'" in err
    assert "Stopping" not in err
    assert not (tmp_path / "state" / "server.pid").exists()
    assert script("--status", *settings).returncode == 3
