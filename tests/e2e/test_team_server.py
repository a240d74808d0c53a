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
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import PROJECT, PYTHON, _descendants
from mlflow.tracking import MlflowClient
from servers import PostgresServer, S3Server, free_port, postgres

SCRIPT = PROJECT / "scripts" / "start_mlflow.sh"
JOBS_OFF = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
WRITER, READER = "alice", "reader"


@dataclass
class Team:
    url: str
    settings: list[str]
    server_env: dict[str, str]
    state: Path
    database: PostgresServer
    s3: S3Server
    admin_password: str
    passwords: dict[str, str]
    outputs: list[str] = field(default_factory=list)

    @property
    def secrets(self) -> dict[str, str]:
        """Every password in play, by whose it is."""
        return {
            "admin": self.admin_password,
            "database": self.database.password,
            **{f"user {name}": value for name, value in self.passwords.items()},
        }

    def script(self, *args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            ["bash", str(SCRIPT), *args, *self.settings],
            env=self.server_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.outputs += [done.stdout, done.stderr]
        return done

    def admin(self) -> MlflowClient:
        return MlflowClient(self.url)


@contextlib.contextmanager
def logged_in(username: str, password: str):
    """This process's MLflow calls as `username` (MLflow reads the environment per call)."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"] = username
    os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def team(s3_server, tmp_path_factory):
    base = tmp_path_factory.mktemp("team-server")
    token = secrets.token_hex(6)
    admin_password = f"ADMINCANARY{token}"
    password_file = tmp_path_factory.mktemp("outside-the-repo") / "admin-password"
    password_file.write_text(admin_password + "\n")
    password_file.chmod(0o600)
    with postgres(password=f"PGCANARY{token}") as database:
        backend = database.create_database("mlflow")
        users = database.create_database("mlflow_auth")
        port = free_port()
        team = Team(
            url=f"http://127.0.0.1:{port}",
            settings=[
                "--port",
                str(port),
                f"state_dir={base / 'state'}",
                f"backend_store_uri={backend}",
                f"auth_database_uri={users}",
                "artifacts_destination=s3://kit/team",
                "auth=true",
                "workers=2",
            ],  # fmt: skip
            server_env={
                **os.environ,
                "PYTHON": PYTHON,
                **JOBS_OFF,
                **s3_server.environment(),  # the server's S3 keys; clients have none
                **database.environment(),  # PGPASSWORD
                "LOGREG_SERVER_ADMIN_PASSWORD_FILE": str(password_file),
            },
            state=base / "state",
            database=database,
            s3=s3_server,
            admin_password=admin_password,
            passwords={WRITER: f"WRITERCANARY{token}", READER: f"READERCANARY{token}"},
        )
        started = team.script("--background")
        try:
            assert started.returncode == 0, started.stdout + started.stderr
            with logged_in("admin", admin_password):
                from mlflow.server import get_app_client

                users_client = get_app_client("basic-auth", tracking_uri=team.url)
                for name, password in team.passwords.items():
                    users_client.create_user(name, password)
                shared = team.admin().create_experiment("team-shared")
                users_client.grant_user_permission(READER, "experiment", shared, "READ")
            yield team
        finally:
            stopped = team.script("--stop")
        assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr


def client_env(tmp_path: Path, username: str | None, password: str | None) -> dict[str, str]:
    """A kit user's environment: the server's URL and a login; no S3 keys, no database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_", "PG"))}
    env["LOGREG_SPOOL_DIR"] = str(tmp_path / "spool")
    if username is not None:
        env["MLFLOW_TRACKING_USERNAME"] = username
    if password is not None:
        env["MLFLOW_TRACKING_PASSWORD"] = password
    return env


def kit(team: Team, tmp_path: Path, env: dict[str, str], *args: str):
    done = subprocess.run(
        [PYTHON, "-m", "logistic_regression", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    team.outputs += [done.stdout, done.stderr]
    return done


def train(team: Team, tmp_path: Path, env: dict[str, str], experiment: str):
    return kit(
        team, tmp_path, env, "train", "tracking=team", f"tracking.uri={team.url}",
        f"tracking.experiment_name={experiment}", f"data.output={tmp_path / 'outputs'}",
    )  # fmt: skip


def error_lines(stderr: str) -> list[str]:
    """The kit's own lines on stderr (Python warnings from installed packages aside)."""
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_no_secret(team: Team, texts: list[str]) -> None:
    for text in texts:
        for whose, value in team.secrets.items():
            assert value not in text, f"the {whose} password is in: {text[:500]}"


def runs_of(team: Team, experiment: str) -> list:
    with logged_in("admin", team.admin_password):
        found = team.admin().get_experiment_by_name(experiment)
        return team.admin().search_runs([found.experiment_id]) if found else []


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
