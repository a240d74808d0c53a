"""The team server's settings and secrets, without starting it (tests/e2e/ starts it):
passwords never in a URI of conf/ or the command line, the auth app's ini written 0600
and read back by MLflow as written, the start's bound, the cause a failed start quotes."""

from __future__ import annotations

import os

import pytest

from logistic_regression import server
from logistic_regression.errors import ConfigError

PASSWORD = "s3cret%with%percent-and-more"


@pytest.fixture
def state(tmp_path):
    return [f"state_dir={tmp_path / 'state'}"]


@pytest.mark.parametrize(
    "setting",
    [
        "backend_store_uri=postgresql://mlflow:hunter22@db/mlflow",
        "auth_database_uri=postgresql://mlflow:hunter22@db/mlflow_auth",
        # libpq takes the password from the query as readily as from the user-info.
        "backend_store_uri='postgresql://mlflow@db/mlflow?password=hunter22'",
        "auth_database_uri='postgresql://mlflow@db/auth?sslmode=require&PASSWORD=hunter22'",
        "backend_store_uri='postgresql://mlflow@db/mlflow?sslpassword=hunter22'",
    ],
)
def test_a_password_in_a_store_uri_is_refused_without_showing_it(setting, state):
    with pytest.raises(ConfigError) as refused:
        server.compose([setting, *state])
    assert "hunter22" not in str(refused.value)
    assert "PGPASSWORD" in str(refused.value)


def test_a_user_name_alone_is_fine(state):
    uri = "postgresql://mlflow@db:5432/mlflow?sslmode=require"
    config = server.compose([f"backend_store_uri='{uri}'", *state])
    assert server.command(config)[server.command(config).index("--backend-store-uri") + 1] == uri


def test_the_auth_ini_is_private_and_mlflow_reads_the_password_back(state, tmp_path, monkeypatch):
    from mlflow.server.auth.config import read_auth_config

    password_file = tmp_path / "admin-password"
    password_file.write_text(PASSWORD + "\n")
    monkeypatch.setenv(server.ADMIN_PASSWORD_FILE, str(password_file))
    monkeypatch.delenv(server.ADMIN_PASSWORD, raising=False)
    config = server.compose(["auth=true", "default_permission=NO_PERMISSIONS", *state])
    environment = server.server_environment(config)

    ini = environment[server.AUTH_CONFIG]
    assert os.stat(ini).st_mode & 0o777 == 0o600
    assert server.ADMIN_PASSWORD_FILE not in environment
    assert server.ADMIN_PASSWORD not in environment
    assert environment[server.SECRET_KEY]
    key_file = tmp_path / "state" / "flask_secret_key"
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    assert server.server_environment(config)[server.SECRET_KEY] == environment[server.SECRET_KEY]

    monkeypatch.setenv(server.AUTH_CONFIG, ini)
    read = read_auth_config()
    assert read.admin_password == PASSWORD
    assert read.default_permission == "NO_PERMISSIONS"
    assert read.database_uri == f"sqlite:///{(tmp_path / 'state' / 'basic_auth.db').resolve()}"
    assert read.auth_cache_ttl_seconds == 60
    assert "--app-name" in server.command(config)
    assert PASSWORD not in " ".join(server.command(config))


def test_auth_without_an_admin_password_is_one_line(state, monkeypatch):
    monkeypatch.delenv(server.ADMIN_PASSWORD_FILE, raising=False)
    monkeypatch.delenv(server.ADMIN_PASSWORD, raising=False)
    config = server.compose(["auth=true", *state])
    with pytest.raises(ConfigError, match=server.ADMIN_PASSWORD_FILE):
        server.server_environment(config)
    monkeypatch.setenv(server.ADMIN_PASSWORD_FILE, "/nonexistent/admin-password")
    with pytest.raises(ConfigError, match="cannot read the admin password file"):
        server.server_environment(config)


def test_the_health_bound_grows_with_the_workers(state):
    one = server.compose(["workers=1", *state])
    four = server.compose(["workers=4", *state])
    assert server.health_bound(four) - server.health_bound(one) == 3 * 30
    assert server.health_bound(server.compose(state)) == 60 + 2 * 30


def test_status_describes_the_stores_with_passwords_hidden(state, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "pg-password-canary")
    config = server.compose(
        ["backend_store_uri=postgresql://mlflow@db/mlflow", "artifacts_destination=s3://b/p"]
        + state
    )
    described = server.describe(config)
    assert described["backend_store"] == "postgresql://***@db/mlflow"
    assert described["artifacts_destination"] == "s3://b/p"
    assert described["auth"] == "none"


SHUTDOWN_AFTER_TRACEBACK = """\
2026/11/24 13:47:04 INFO:     Started parent process [4235]
Traceback (most recent call last):
  File "/x/mlflow/store/db/utils.py", line 442, in create_sqlalchemy_engine
    engine = sqlalchemy.create_engine(db_uri, pool_pre_ping=True, **kwargs)
sqlalchemy.exc.OperationalError: (psycopg.OperationalError) connection failed: FATAL:  \
password authentication failed for user "mlflow"
2026/11/24 13:47:05 ERROR mlflow.cli: Error initializing backend store
2026/11/24 13:47:06 INFO:     Stopping parent process [4235]
"""


def test_a_failed_start_quotes_the_traceback_not_the_shutdown_line():
    cause = server.cause_from_log(SHUTDOWN_AFTER_TRACEBACK)
    assert cause.startswith("sqlalchemy.exc.OperationalError:")
    assert "password authentication failed" in cause


CHAINED = """\
2026/11/24 14:06:46 ERROR mlflow.cli: Error initializing backend store
Traceback (most recent call last):
  File "/x/mlflow/tracking/registry.py", line 1, in get_store
KeyError: 'nosuchdb'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/x/mlflow/server/__init__.py", line 9, in initialize_backend_stores
mlflow.tracking.registry.UnsupportedModelRegistryStoreURIException:  got unsupported URI
2026/11/24 14:06:47 INFO:     Stopping parent process [4235]
Traceback (most recent call last):
SystemExit: 1
"""


def test_of_a_chain_of_exceptions_the_last_is_quoted():
    cause = server.cause_from_log(CHAINED)
    assert cause.startswith("mlflow.tracking.registry.UnsupportedModelRegistryStoreURIException")


def test_without_a_traceback_the_first_error_line_else_the_last_line():
    log = "INFO: starting\nERROR: [Errno 98] address already in use\nINFO: Stopping\n"
    assert server.cause_from_log(log) == "ERROR: [Errno 98] address already in use"
    assert server.cause_from_log("INFO: a\nINFO: b\n") == "INFO: b"
    assert server.cause_from_log("") == "(nothing in the log)"


def test_a_refused_login_says_which_variables_to_check(monkeypatch):
    from logistic_regression.tracking import store

    for name in store.CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    assert "none was given" in store.unauthenticated("http://mlflow.internal:5000")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong-password-123")
    line = store.unauthenticated("http://mlflow.internal:5000")
    assert "refused the credentials in MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD" in line
    assert "wrong-password-123" not in line


def test_a_denied_run_names_the_experiment_and_other_errors_pass():
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, RESOURCE_DOES_NOT_EXIST

    from logistic_regression.errors import StorageError
    from logistic_regression.tracking.runs import refusing_read_only

    with pytest.raises(StorageError, match="experiment 'shared': permission denied"):
        with refusing_read_only("shared"):
            raise MlflowException("Permission denied", error_code=PERMISSION_DENIED)
    with pytest.raises(MlflowException):
        with refusing_read_only("shared"):
            raise MlflowException("gone", error_code=RESOURCE_DOES_NOT_EXIST)


@pytest.mark.parametrize(
    "settings, missing",
    [
        (["host=0.0.0.0"], "auth=true and tls_certfile and tls_keyfile"),
        (["host=0.0.0.0", "auth=true"], "tls_certfile and tls_keyfile"),
        (["host=10.1.2.3", "tls_certfile=CERT", "tls_keyfile=KEY"], "auth=true"),
    ],
)
def test_a_server_beyond_loopback_needs_auth_and_tls(
    settings, missing, state, tmp_path, monkeypatch
):
    (tmp_path / "c.pem").write_text("cert")
    (tmp_path / "k.pem").write_text("key")
    given = [s.replace("CERT", str(tmp_path / "c.pem")).replace("KEY", str(tmp_path / "k.pem"))
             for s in settings]  # fmt: skip
    with pytest.raises(ConfigError, match=f"is not allowed without {missing}:"):
        server.compose([*given, *state])


def test_tls_settings_reach_the_server_and_its_names_only(state, tmp_path):
    (tmp_path / "c.pem").write_text("cert")
    (tmp_path / "k.pem").write_text("key")
    tls = [f"tls_certfile={tmp_path / 'c.pem'}", f"tls_keyfile={tmp_path / 'k.pem'}"]
    config = server.compose(["host=0.0.0.0", "auth=true", "port=5443", *tls, *state])
    command = server.command(config)
    opts = command[command.index("--uvicorn-opts") + 1]
    assert f"--ssl-certfile {tmp_path / 'c.pem'}" in opts and "--ssl-keyfile" in opts
    assert server.url(config) == "https://127.0.0.1:5443"
    hosts = command[command.index("--allowed-hosts") + 1].split(",")
    assert "127.0.0.1:5443" in hosts and "localhost" in hosts
    assert not any(h.startswith(("10.", "192.168", "*")) for h in hosts)
    origins = command[command.index("--cors-allowed-origins") + 1]
    assert origins == "https://127.0.0.1:5443,https://localhost:5443"
    with pytest.raises(ConfigError, match="tls_certfile and tls_keyfile go together"):
        server.compose([tls[0], *state])
    with pytest.raises(ConfigError, match="no such file"):
        server.compose(["tls_certfile=/nonexistent.pem", "tls_keyfile=/nonexistent.key", *state])


def test_a_stop_waits_a_bounded_time_for_open_connections(state):
    """uvicorn waits for every open connection before it stops, with no bound by default:
    a client's idle keep-alive connection (over TLS) held `--stop` until its SIGKILL."""
    command = server.command(server.compose([*state]))
    opts = command[command.index("--uvicorn-opts") + 1]
    assert "--timeout-graceful-shutdown 5" in opts
