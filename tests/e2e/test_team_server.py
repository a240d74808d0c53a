"""The team setup for real: `scripts/start_mlflow.sh` starts `mlflow server` with its
basic-auth app (two workers) on a real PostgreSQL cluster (a throwaway one, see
tests/servers.py) with artifacts in a real S3 server (SeaweedFS). The admin password
comes from a file named in the environment, the database's from PGPASSWORD: neither is
on any process's command line, in the server's description or in anything the kit
writes. The kit runs as a client with the credentials of a user the admin created and
no S3 keys; wrong or missing credentials and a read-only experiment are one line each,
with no run created and nothing spooled.

The server is started once for the module (it takes most of the module's time)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from conftest import PROJECT, _descendants
from team_setup import (  # noqa: F401 - team_fixture: the module's `team`
    READER,
    WRITER,
    assert_no_secret,
    client_env,
    error_lines,
    kit,
    logged_in,
    runs_of,
    team_fixture,
    train,
)


def test_the_kit_records_through_the_server_with_a_users_login(team, tmp_path):
    env = client_env(tmp_path, WRITER, team.passwords[WRITER])
    done = train(team, tmp_path, env, "team-alice")
    assert done.returncode == 0, done.stderr[-3000:]

    with logged_in("admin", team.admin_password):
        client = team.admin()
        experiment = client.get_experiment_by_name("team-alice")
        (run,) = client.search_runs([experiment.experiment_id])
        assert run.info.status == "FINISHED"
        assert run.data.tags["kit.artifacts"] == "complete"
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")
        listed = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"report.html", "config.yaml", "environment.txt"} <= listed
        (model,) = client.search_logged_models(experiment_ids=[experiment.experiment_id])
        assert str(model.status) == "READY"
        recorded = [*run.data.params.values(), *run.data.tags.values(), *run.data.params]
    assert_no_secret(team, recorded)

    keys = [
        item["Key"]
        for page in team.s3.client()
        .get_paginator("list_objects_v2")
        .paginate(Bucket="kit", Prefix="team/")
        for item in page.get("Contents", [])
    ]
    assert any(k.endswith(f"{run.info.run_id}/artifacts/report.html") for k in keys)
    assert any(k.endswith("/artifacts/MLmodel") for k in keys), "the model is in S3 too"
    # The uploader (a subprocess) had the login too: nothing waits in the spool.
    assert not any((tmp_path / "spool").glob("*/journal.jsonl"))

    # The other commands take the server from the environment (the documented way).
    env["MLFLOW_TRACKING_URI"] = team.url
    synced = kit(team, tmp_path, env, "sync")
    assert synced.returncode == 0, synced.stderr[-2000:]
    again = kit(team, tmp_path, env, "reproduce", run.info.run_id)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(runs_of(team, "team-alice")) == 2
    assert_no_secret(team, team.outputs)
    tracking_store = team.database.dump("mlflow")  # every param, tag, metric, input
    assert run.info.run_id in tracking_store
    assert_no_secret(team, [tracking_store])


@pytest.mark.parametrize(
    "login, expected",
    [
        ((WRITER, "not-the-password"), "refused the credentials"),
        ((None, None), "requires a login and none was given"),
    ],
    ids=["wrong-password", "no-login"],
)
def test_wrong_or_missing_credentials_are_one_line_and_nothing_is_recorded(
    team, tmp_path, login, expected
):
    done = train(team, tmp_path, client_env(tmp_path, *login), "team-refused")
    assert done.returncode == 2, done.stderr[-3000:]
    (line,) = error_lines(done.stderr)
    assert expected in line and team.url in line
    assert "not-the-password" not in done.stderr + done.stdout
    assert runs_of(team, "team-refused") == []
    spool = tmp_path / "spool"
    assert not spool.exists() or not any(spool.iterdir()), "nothing is spooled"
    assert_no_secret(team, team.outputs)


def test_a_read_only_user_is_told_which_experiment_in_one_line(team, tmp_path):
    env = client_env(tmp_path, READER, team.passwords[READER])
    done = train(team, tmp_path, env, "team-shared")
    assert done.returncode == 2, done.stderr[-3000:]
    (line,) = error_lines(done.stderr)
    assert "experiment 'team-shared'" in line and "permission denied" in line
    assert runs_of(team, "team-shared") == []
    spool = tmp_path / "spool"
    assert not spool.exists() or not any(spool.iterdir()), "nothing is spooled"


def test_status_names_the_stores_and_no_password_is_on_a_command_line(team):
    shown = team.script("--status")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "healthy" in shown.stdout
    assert f"backend store: postgresql://***@127.0.0.1:{team.database.port}/mlflow" in shown.stdout
    assert "artifact destination: s3://kit/team" in shown.stdout
    assert "basic-auth" in shown.stdout and "/mlflow_auth" in shown.stdout

    pid = int((team.state / "server.pid").read_text())
    processes = [(pid, "server"), *_descendants(pid)]
    assert len(processes) >= 3, processes  # the server and its two workers at least
    for process, _ in processes:
        with contextlib.suppress(FileNotFoundError):  # a helper that has just ended
            assert_no_secret(team, [Path(f"/proc/{process}/cmdline").read_text(errors="replace")])

    ini = team.state / "basic_auth.ini"
    assert ini.stat().st_mode & 0o777 == 0o600
    assert team.admin_password in ini.read_text()  # where MLflow reads it: there alone
    written = [
        path.read_text(errors="replace")
        for path in team.state.iterdir()
        if path.is_file() and path != ini and path.suffix != ".db"
    ]
    assert_no_secret(team, [*written, *team.outputs])
    assert not list((PROJECT / "conf").rglob("basic_auth.ini"))
