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
    # in the recorded environment, rebuilt: the login reaches it from the environment,
    # and none of it is written into the environment's files
    cache = tmp_path / "environments"
    again = kit(
        team, tmp_path, env, "reproduce", run.info.run_id, "--env", "recorded",
        "--env-cache", str(cache),
    )  # fmt: skip
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "environment: rebuilt from the record" in again.stdout
    assert "verdict: reproduced" in again.stdout
    assert len(runs_of(team, "team-alice")) == 2
    assert_no_secret(team, team.outputs)
    built = [path for path in cache.rglob("*") if path.is_file() and not path.is_symlink()]
    assert any(path.name == "pyvenv.cfg" for path in built)
    for path in built:
        if path.stat().st_size < 1_000_000:  # what the kit or uv wrote, not the wheels' code
            data = path.read_bytes()
            for whose, value in team.secrets.items():
                assert value.encode() not in data, f"the {whose} password is in {path}"
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
    # The state folder and everything in it (the log, the description) are private.
    assert team.state.stat().st_mode & 0o777 == 0o700
    assert [p.name for p in team.state.iterdir() if p.stat().st_mode & 0o077] == []
    assert team.admin_password in ini.read_text()  # where MLflow reads it: there alone
    written = [
        path.read_text(errors="replace")
        for path in team.state.iterdir()
        if path.is_file() and path != ini and path.suffix != ".db"
    ]
    assert_no_secret(team, [*written, *team.outputs])
    assert not list((PROJECT / "conf").rglob("basic_auth.ini"))


# -- the kit's checks on top of MLflow's permissions (logistic_regression/server_app.py) --


def _rest(team, login, method: str, endpoint: str, **body):
    import requests

    call = requests.get if method == "GET" else requests.post
    payload = {"params": body} if method == "GET" else {"json": body}
    return call(f"{team.url}/api/2.0/mlflow/{endpoint}", auth=login, timeout=60, **payload)


@pytest.fixture(scope="module")
def intruder(team):
    """A third user with nothing granted, and DENY on a private experiment of
    alice's holding one run with a file: what the attacks below try to reach."""
    import secrets

    from mlflow.server import get_app_client

    name, password = "mallory", "MALLORYCANARY" + secrets.token_hex(6)
    team.passwords[name] = password
    with logged_in("admin", team.admin_password):
        get_app_client("basic-auth", tracking_uri=team.url).create_user(name, password)
    with logged_in(WRITER, team.passwords[WRITER]):
        from mlflow.tracking import MlflowClient

        client = MlflowClient(team.url)
        experiment = client.create_experiment("team-private")
        run = client.create_run(experiment)
        client.log_text(run.info.run_id, "private: alice's config\n", "config.yaml")
        client.set_terminated(run.info.run_id)
    with logged_in("admin", team.admin_password):
        users = get_app_client("basic-auth", tracking_uri=team.url)
        users.grant_user_permission(name, "experiment", experiment, "DENY")
    return (name, password), experiment, run


def test_a_model_version_cannot_read_what_its_creator_may_not(team, intruder):
    login, experiment, run = intruder
    run_id = run.info.run_id
    assert _rest(team, login, "GET", "runs/get", run_id=run_id).status_code == 403
    created = _rest(team, login, "POST", "registered-models/create", name="stolen")
    assert created.status_code == 200, created.text
    for source in (
        f"s3://kit/team/{experiment}/{run_id}/artifacts",  # the run's own prefix
        "s3://kit/team",  # anything the server's keys reach
        f"file://{team.state}",  # the server's disk
        f"runs:/{run_id}/",  # without run_id, MLflow itself checks nothing
        f"mlflow-artifacts:/{experiment}/{run_id}/artifacts",
        f"mlflow-artifacts:/0/../{experiment}/{run_id}/artifacts",
    ):
        refused = _rest(team, login, "POST", "model-versions/create", name="stolen", source=source)
        assert refused.status_code == 403, (source, refused.status_code, refused.text)
        assert "must be runs:/, models:/ or mlflow-artifacts:/" in refused.json()["message"]
    versions = _rest(team, login, "GET", "registered-models/get", name="stolen").json()
    assert not versions["registered_model"].get("latest_versions")

    # A source of one's own passes: the kit's own `register=true` path (models:/<id>).
    import mlflow

    with logged_in(*login):
        from mlflow.tracking import MlflowClient

        client = MlflowClient(team.url)
        own = client.create_experiment("team-mallory")
        model = client.create_logged_model(own)
        client.finalize_logged_model(model.model_id, "READY")
        mlflow.set_tracking_uri(team.url)
        try:
            version = mlflow.register_model(f"models:/{model.model_id}", "stolen")
        finally:
            mlflow.set_tracking_uri(None)
    assert str(version.version) == "1"


def test_an_experiment_gets_the_servers_artifact_location_only(team, intruder):
    login, experiment, run = intruder
    planted = team.state / "planted"
    for location in (
        f"s3://kit/team/{experiment}/{run.info.run_id}/artifacts",  # into alice's run
        f"file://{planted}",  # onto the server's disk
    ):
        refused = _rest(
            team, login, "POST", "experiments/create",
            name=f"team-planted-{len(location)}", artifact_location=location,
        )  # fmt: skip
        assert refused.status_code == 400, (location, refused.text)
        assert "artifact_location is chosen by this server" in refused.json()["message"]
    assert not planted.exists()
    # So no report.html of someone else's can appear in alice's run (its script ran in
    # the UI's frame when it could): her run lists only her own file.
    with logged_in(WRITER, team.passwords[WRITER]):
        from mlflow.tracking import MlflowClient

        listed = [a.path for a in MlflowClient(team.url).list_artifacts(run.info.run_id)]
    assert listed == ["config.yaml"]
    allowed = _rest(team, login, "POST", "experiments/create", name="team-mallory-plain")
    assert allowed.status_code == 200, allowed.text


def test_only_admins_list_users_and_a_token_is_a_401_not_a_500(team, intruder):
    import requests

    login, _, _ = intruder
    listed = _rest(team, login, "GET", "users/list")
    assert listed.status_code == 403, listed.text
    assert "mallory" not in listed.text and WRITER not in listed.text
    as_admin = _rest(team, ("admin", team.admin_password), "GET", "users/list")
    assert as_admin.status_code == 200 and "mallory" in as_admin.text

    log = team.state / "server.log"
    before = log.stat().st_size
    for _ in range(3):
        answer = requests.get(
            f"{team.url}/api/2.0/mlflow/experiments/search",
            params={"max_results": 1},
            headers={"Authorization": "Bearer not-a-basic-login"},
            timeout=60,
        )
        assert answer.status_code == 401, answer.text
        assert "basic auth" in answer.json()["message"]
    with log.open("rb") as handle:
        handle.seek(before)
        assert b"Traceback" not in handle.read()


def test_reproducing_where_one_may_only_read_is_one_line_before_the_clone(team, tmp_path):
    """The reader may read alice's run but not record in its experiment: `reproduce`
    says so in one line before cloning anything (it was a clone, then an "unexpected"
    403), and leaves nothing behind."""
    import subprocess

    import yaml
    from mlflow.tracking import MlflowClient

    from logistic_regression import provenance
    from logistic_regression.config import compose_config
    from logistic_regression.data import read_table
    from logistic_regression.preflight import recorded_config

    head = subprocess.run(
        ["git", "-C", str(PROJECT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    with logged_in(WRITER, team.passwords[WRITER]):
        client = MlflowClient(team.url)
        experiment = client.create_experiment("team-alice-readable")
        run = client.create_run(experiment, tags={
            provenance.SOURCE_NAME: f"file://{PROJECT}",
            provenance.GIT_COMMIT: head,
            provenance.GIT_DIRTY: "false",
        })  # fmt: skip
        _, ref = read_table("breast_cancer")
        client.log_param(run.info.run_id, "input_path", "breast_cancer")
        client.log_param(run.info.run_id, "input_digest", ref.digest)
        config = yaml.safe_dump(recorded_config(compose_config([])))
        client.log_text(run.info.run_id, config, "config.yaml")
        client.set_terminated(run.info.run_id)

    env = client_env(tmp_path, READER, team.passwords[READER])
    env["MLFLOW_TRACKING_URI"] = team.url
    done = kit(team, tmp_path, env, "reproduce", run.info.run_id)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = error_lines(done.stderr)
    assert "experiment 'team-alice-readable'" in line and "permission denied" in line
    assert "Re-running" not in done.stdout
    assert [r.info.run_id for r in runs_of(team, "team-alice-readable")] == [run.info.run_id]
