"""The team server's secrets, from outside the repository: the admin's password (a file
LOGREG_SERVER_ADMIN_PASSWORD_FILE names, else MLFLOW_AUTH_ADMIN_PASSWORD), the ini MLflow's
basic-auth app reads (written at each start, 0600), and the Flask secret key all workers
share (MLFLOW_FLASK_SERVER_SECRET_KEY, else one made at the first start, 0600)."""

from __future__ import annotations

import configparser
import contextlib
import io
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from logistic_regression.config import PROJECT_DIR
from logistic_regression.errors import ConfigError
from logistic_regression.uris import absolute_tracking_uri, add_secret

if TYPE_CHECKING:
    from logistic_regression.server import ServerConfig

ADMIN_PASSWORD_FILE = "LOGREG_SERVER_ADMIN_PASSWORD_FILE"
ADMIN_PASSWORD = "MLFLOW_AUTH_ADMIN_PASSWORD"
SECRET_KEY = "MLFLOW_FLASK_SERVER_SECRET_KEY"
AUTH_CONFIG = "MLFLOW_AUTH_CONFIG_PATH"


def in_project(path: str) -> Path:
    """A path of conf/server.yaml: absolute, or relative to the project folder."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else PROJECT_DIR / candidate


def auth_database_uri(config: ServerConfig) -> str:
    """Where the auth app keeps users and permissions: `auth_database_uri`, else a SQLite
    file in `state_dir`."""
    if config.auth_database_uri:
        return absolute_tracking_uri(config.auth_database_uri, PROJECT_DIR)
    return f"sqlite:///{in_project(config.state_dir).resolve() / 'basic_auth.db'}"


def admin_password() -> str:
    """The admin's password: the file LOGREG_SERVER_ADMIN_PASSWORD_FILE names, else
    MLFLOW_AUTH_ADMIN_PASSWORD; never conf/ or the command line."""
    path = os.environ.get(ADMIN_PASSWORD_FILE, "")
    if path:
        try:
            password = Path(path).expanduser().read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"{ADMIN_PASSWORD_FILE}={path}: cannot read the admin password file "
                f"({exc.strerror or type(exc).__name__})"
            ) from None
        where = f"the file {ADMIN_PASSWORD_FILE} names"
    else:
        password = os.environ.get(ADMIN_PASSWORD, "")
        where = ADMIN_PASSWORD
    if not password:
        raise ConfigError(
            "auth=true needs the admin's password: put it in a file outside the repository "
            f"and set {ADMIN_PASSWORD_FILE} to its path (or set {ADMIN_PASSWORD})"
        )
    if password != password.strip() or any(ord(c) < 32 for c in password):
        raise ConfigError(
            f"the admin password in {where} starts or ends with a space or holds a control "
            "character; MLflow's auth config cannot carry it"
        )
    add_secret(password)  # hidden in whatever this process prints from now on
    return password


def write_private(path: Path, text: str) -> None:
    """`text` into `path`, readable by this user alone (0600) from its first byte."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)  # an older file may have had another mode
        handle.write(text)


def _escape(value: str) -> str:
    """A value as MLflow's ConfigParser (BasicInterpolation) reads it back: `%` doubled."""
    return value.replace("%", "%%")


def write_auth_config(config: ServerConfig, folder: Path) -> Path:
    """The ini MLflow's auth app reads (MLFLOW_AUTH_CONFIG_PATH), made at each start from
    the config and the environment's admin password, mode 0600."""
    parser = configparser.ConfigParser()
    parser["mlflow"] = {
        "default_permission": config.default_permission,
        "database_uri": _escape(auth_database_uri(config)),
        "admin_username": _escape(config.admin_username),
        "admin_password": _escape(admin_password()),
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        "auth_cache_ttl_seconds": str(config.auth_cache_ttl_s),
    }
    text = io.StringIO()
    parser.write(text)
    path = folder / "basic_auth.ini"
    write_private(path, text.getvalue())
    return path


def flask_secret_key(folder: Path) -> str:
    """MLFLOW_FLASK_SERVER_SECRET_KEY, else the key made at the first start (0600 file)."""
    given = os.environ.get(SECRET_KEY, "")
    if given:
        return given
    path = folder / "flask_secret_key"
    with contextlib.suppress(OSError):
        kept = path.read_text().strip()
        if kept:
            return kept
    key = secrets.token_hex(32)
    write_private(path, key + "\n")
    return key
