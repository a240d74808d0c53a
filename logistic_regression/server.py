"""The team tracking server: start (foreground or background), stop, status.

`scripts/start_mlflow.sh` calls this. Settings come from `conf/server.yaml` (host, port,
backend store, artifact destination, authentication); the server serves artifacts itself
(`--serve-artifacts`), so clients need no S3 keys. A background server writes its PID,
log and a description of itself (what `--status` shows) under `state_dir`; starting
waits for `/health` (`health_timeout_s` + `health_timeout_per_worker_s` per worker) and
fails with one line quoting the cause from the server's log when it does not come up.

Passwords never come from conf/ or the command line (which `ps` shows):

- the database's from libpq's own places: PGPASSWORD, PGPASSFILE or ~/.pgpass (a
  backend_store_uri or auth_database_uri with a password in it is refused);
- with `auth: true` (MLflow's basic-auth app, with the kit's checks on top:
  server_app.py), the admin's from the file named by
  LOGREG_SERVER_ADMIN_PASSWORD_FILE, else from MLFLOW_AUTH_ADMIN_PASSWORD. The server
  reads it from the ini MLflow's auth takes (MLFLOW_AUTH_CONFIG_PATH), written at each
  start into `state_dir` with mode 0600. The Flask secret key the auth app needs (one
  for all workers) is MLFLOW_FLASK_SERVER_SECRET_KEY, else one made at the first start
  and kept in `state_dir` (0600).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from hydra.core.config_store import ConfigStore

from logistic_regression import server_app, server_network
from logistic_regression.config import PROJECT_DIR
from logistic_regression.config import compose as compose_config_file
from logistic_regression.environment import for_child, private_files
from logistic_regression.errors import ConfigError, KitError
from logistic_regression.server_auth import (
    ADMIN_PASSWORD,
    ADMIN_PASSWORD_FILE,
    AUTH_CONFIG,
    SECRET_KEY,
    auth_database_uri,
    flask_secret_key,
    in_project,
    write_auth_config,
    write_private,
)
from logistic_regression.server_log import cause_from_log
from logistic_regression.server_network import healthy, url
from logistic_regression.uris import absolute_tracking_uri, install, redact, secret_in_query


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 5000
    backend_store_uri: str = "sqlite:///mlflow-server.db"
    artifacts_destination: str = "./mlartifacts"
    workers: int = 2
    state_dir: str = ".mlflow-server"
    health_timeout_s: float = 60.0
    health_timeout_per_worker_s: float = 30.0
    auth: bool = False
    auth_database_uri: str = ""
    admin_username: str = "admin"
    default_permission: str = "READ"
    auth_cache_ttl_s: int = 60
    tls_certfile: str = ""
    tls_keyfile: str = ""
    allowed_hosts: str = ""
    cors_allowed_origins: str = ""


ConfigStore.instance().store(name="base_server", node=ServerConfig)


def compose(overrides: list[str]) -> ServerConfig:
    """`conf/server.yaml` with overrides, checked; errors are one line."""
    config = compose_config_file("server", overrides)
    if not 0 < config.port < 65536:
        raise ConfigError(f"port={config.port} is not allowed; it must be 1-65535")
    if config.workers < 1:
        raise ConfigError(f"workers={config.workers} is not allowed; it must be >= 1")
    if config.auth_cache_ttl_s < 0:
        raise ConfigError(
            f"auth_cache_ttl_s={config.auth_cache_ttl_s} is not allowed; it must be >= 0"
        )
    if config.default_permission not in PERMISSIONS:
        raise ConfigError(
            f"default_permission={config.default_permission} is not allowed; "
            f"it must be one of {', '.join(PERMISSIONS)}"
        )
    server_network.check(config)
    for name in ("backend_store_uri", "auth_database_uri", "artifacts_destination"):
        value = getattr(config, name)
        if _password_in(value):
            shown = redact(value.partition("?")[0]) + ("?..." if "?" in value else "")
            raise ConfigError(
                f"{name}={shown} carries a password; the command line shows it to "
                "every user (`ps`): give the database's in PGPASSWORD, PGPASSFILE or "
                "~/.pgpass, S3's through the AWS credential chain"
            )
    return config


# MLflow's permissions (mlflow/server/auth/permissions.py).
PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS")


def _password_in(uri: str) -> bool:
    """A password in the user-info or in the query (libpq takes `?password=` as readily;
    a command line shows either to every local user)."""
    if "://" not in uri:
        return False
    if secret_in_query(uri):
        return True
    try:
        return bool(urlsplit(uri).password)
    except ValueError:  # a malformed address: not this check's to judge
        return False


def backend_uri(config: ServerConfig) -> str:
    """A relative SQLite path is relative to the project folder, not to where you are."""
    return absolute_tracking_uri(config.backend_store_uri, PROJECT_DIR)


def artifacts_destination(config: ServerConfig) -> str:
    destination = config.artifacts_destination
    if "://" in destination:
        return destination
    return str(in_project(destination))


def command(config: ServerConfig) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        config.host,
        "--port",
        str(config.port),
        "--backend-store-uri",
        backend_uri(config),
        "--serve-artifacts",
        "--artifacts-destination",
        artifacts_destination(config),
        "--workers",
        str(config.workers),
        *(["--app-name", server_app.ENTRY_POINT] if config.auth else []),
        *server_network.flags(config),
    ]


def port_taken(config: ServerConfig) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((config.host, config.port))
        except OSError:
            return True
    return False


def _state(config: ServerConfig) -> tuple[Path, Path]:
    folder = in_project(config.state_dir)
    return folder / "server.pid", folder / "server.log"


def _description_file(config: ServerConfig) -> Path:
    return in_project(config.state_dir) / "server.json"


def running_pid(config: ServerConfig) -> int | None:
    pid_file, _ = _state(config)
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def _refuse_taken_port(config: ServerConfig) -> None:
    if port_taken(config):
        raise KitError(
            f"port {config.port} on {config.host} is already in use; pass --port N, "
            "or --stop the kit's server if it is the one holding it"
        )


def health_bound(config: ServerConfig) -> float:
    """How long a start waits for /health: each worker imports MLflow and opens the stores
    on cores the others share, so the bound grows with their number."""
    return config.health_timeout_s + config.workers * config.health_timeout_per_worker_s


def server_environment(config: ServerConfig) -> dict[str, str]:
    """The server's environment: the user's (PGPASSWORD or PGPASSFILE for the database,
    the AWS chain for S3), with the auth app's config path and key; without the admin
    password, which only the 0600 ini carries."""
    folder = in_project(config.state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    environment = for_child()
    environment.pop(ADMIN_PASSWORD, None)
    environment.pop(ADMIN_PASSWORD_FILE, None)
    if config.auth:
        environment[AUTH_CONFIG] = str(write_auth_config(config, folder))
        environment[SECRET_KEY] = flask_secret_key(folder)
    return environment


def describe(config: ServerConfig) -> dict[str, str]:
    """What `--status` shows about a server: its stores (passwords hidden), auth."""
    return {
        "url": url(config),
        "backend_store": redact(backend_uri(config)),
        "artifacts_destination": redact(artifacts_destination(config)),
        "auth": (
            f"basic-auth with the kit's checks (users in {redact(auth_database_uri(config))}, "
            f"default permission {config.default_permission})"
            if config.auth
            else "none"
        ),
        "workers": str(config.workers),
    }


# -- start, stop, status ----------------------------------------------------------------


def start_foreground(config: ServerConfig) -> int:
    _refuse_taken_port(config)
    environment = server_environment(config)
    write_private(_description_file(config), json.dumps(describe(config), indent=1))
    print(f"MLflow tracking server on {url(config)} (Ctrl-C stops it)", flush=True)
    os.execve(sys.executable, command(config), environment)
    return 0  # not reached


def start_background(config: ServerConfig) -> int:
    pid = running_pid(config)
    if pid is not None and healthy(config):
        print(f"already running at {url(config)} (pid {pid})")
        return 0
    _refuse_taken_port(config)
    environment = server_environment(config)
    pid_file, log_file = _state(config)
    with log_file.open("ab") as log:
        log_start = log.tell()
        process = subprocess.Popen(
            command(config),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=environment,
            start_new_session=True,  # its own process group: --stop ends the workers too
        )
    pid_file.write_text(f"{process.pid}\n")
    write_private(_description_file(config), json.dumps(describe(config), indent=1))
    bound = health_bound(config)
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if healthy(config):
            print(f"MLflow tracking server running at {url(config)} (pid {process.pid})")
            print(f"  clients: export MLFLOW_TRACKING_URI={url(config)}")
            if config.auth:
                print(
                    "  with MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
                    "(users: the admin creates them)"
                )
            return 0
        time.sleep(0.3)
    exited = process.poll()
    _stop_group(process.pid)
    pid_file.unlink(missing_ok=True)
    _description_file(config).unlink(missing_ok=True)
    with log_file.open("rb") as log:
        log.seek(log_start)
        cause = cause_from_log(log.read().decode(errors="replace"))
    what = (
        f"exited with code {exited}"
        if exited is not None
        else f"did not answer {url(config)}/health within {bound:g} s"
    )
    raise KitError(f"the server {what}: {cause[:300]} (log: {log_file})")


def _stop_group(pid: int, timeout: float = 15.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def stop(config: ServerConfig) -> int:
    pid = running_pid(config)
    pid_file, _ = _state(config)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        print("no kit tracking server is running")
        return 0
    _stop_group(pid)
    pid_file.unlink(missing_ok=True)
    _description_file(config).unlink(missing_ok=True)
    # The admin's password is in the ini only while a server may read it (a start
    # writes it again).
    (in_project(config.state_dir) / "basic_auth.ini").unlink(missing_ok=True)
    print(f"stopped the tracking server (pid {pid})")
    return 0


def status(config: ServerConfig) -> int:
    pid = running_pid(config)
    if pid is None:
        print("not running")
        return 3
    if healthy(config):
        print(f"running at {url(config)} (pid {pid}), healthy")
        code = 0
    else:
        print(f"pid {pid} is alive but {url(config)}/health does not answer")
        code = 1
    try:  # what this server was started with, not what conf/ says today
        started = json.loads(_description_file(config).read_text())
    except (OSError, ValueError):
        started = describe(config)
    print(f"  backend store: {redact(started.get('backend_store', '?'))}")
    print(f"  artifact destination: {redact(started.get('artifacts_destination', '?'))}")
    print(f"  authentication: {redact(started.get('auth', '?'))}")
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/start_mlflow.sh", description="Start, stop or check the tracking server."
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--background", action="store_true", help="start detached")
    action.add_argument("--stop", action="store_true", help="stop the background server")
    action.add_argument("--status", action="store_true", help="is it running and healthy?")
    parser.add_argument("--port", type=int, help="port (default: conf/server.yaml)")
    parser.add_argument("overrides", nargs="*", help="conf/server.yaml overrides, key=value")
    args = parser.parse_args(argv)
    install()  # what it prints (a backend store URI with a password, say) is redacted
    with private_files():  # the log, the state folder, a SQLite store: this user's alone
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        overrides = list(args.overrides)
        if args.port is not None:
            overrides.append(f"port={args.port}")
        config = compose(overrides)
        if args.stop:
            return stop(config)
        if args.status:
            return status(config)
        if args.background:
            return start_background(config)
        return start_foreground(config)
    except KitError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
