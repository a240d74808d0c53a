"""The team server for the e2e tests that use it (test_team_server.py,
test_team_server_load.py): `scripts/start_mlflow.sh` starts `mlflow server` with its
basic-auth app (two workers) on a real, throwaway PostgreSQL cluster with artifacts in
the session's SeaweedFS; the admin creates a writer and a reader. The `team` fixture is
module-scoped: a module that imports it starts one server for all its tests."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import reaper
from conftest import PROJECT, PYTHON
from mlflow.tracking import MlflowClient
from servers import PostgresServer, S3Server, free_port, postgres

from logistic_regression import environment

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
    login = {"MLFLOW_TRACKING_USERNAME": username, "MLFLOW_TRACKING_PASSWORD": password}
    with environment.variables(login):
        yield


@pytest.fixture(scope="module", name="team")
def team_fixture(s3_server, tmp_path_factory):
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
            # The server's own process group (its workers too) dies with this process.
            reaper.track(int((base / "state" / "server.pid").read_text().split()[0]), reaper.GROUP)
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
        assert not (base / "state" / "basic_auth.ini").exists(), "the admin password stayed"


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
