"""The team tracking server: start (foreground or background), stop, status.

`scripts/start_mlflow.sh` calls this. Settings come from `conf/server.yaml` (host, port,
backend store, artifact destination); the server serves artifacts itself
(`--serve-artifacts`), so clients need no S3 keys. A background server writes its PID
and log under `state_dir`; starting waits for `/health` and fails with a clear message
when the port is taken or the server does not come up.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from hydra.core.config_store import ConfigStore

from logistic_regression.background import child_environment
from logistic_regression.config import PROJECT_DIR
from logistic_regression.config import compose as compose_config_file
from logistic_regression.errors import ConfigError, KitError
from logistic_regression.uris import absolute_tracking_uri, install, redact


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 5000
    backend_store_uri: str = "sqlite:///mlflow-server.db"
    artifacts_destination: str = "./mlartifacts"
    workers: int = 2
    state_dir: str = ".mlflow-server"
    health_timeout_s: float = 60.0


ConfigStore.instance().store(name="base_server", node=ServerConfig)


def compose(overrides: list[str]) -> ServerConfig:
    """`conf/server.yaml` with overrides, checked; errors are one line."""
    config = compose_config_file("server", overrides)
    if not 0 < config.port < 65536:
        raise ConfigError(f"port={config.port} is not allowed; it must be 1-65535")
    if config.workers < 1:
        raise ConfigError(f"workers={config.workers} is not allowed; it must be >= 1")
    return config


def _in_project(path: str) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else PROJECT_DIR / candidate


def backend_uri(config: ServerConfig) -> str:
    """A relative SQLite path is relative to the project folder, not to where you are."""
    return absolute_tracking_uri(config.backend_store_uri, PROJECT_DIR)


def artifacts_destination(config: ServerConfig) -> str:
    destination = config.artifacts_destination
    if "://" in destination:
        return destination
    return str(_in_project(destination))


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
    ]


def url(config: ServerConfig) -> str:
    host = "127.0.0.1" if config.host in ("0.0.0.0", "") else config.host
    return f"http://{host}:{config.port}"


def healthy(config: ServerConfig, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url(config)}/health", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def port_taken(config: ServerConfig) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((config.host, config.port))
        except OSError:
            return True
    return False


def _state(config: ServerConfig) -> tuple[Path, Path]:
    folder = _in_project(config.state_dir)
    return folder / "server.pid", folder / "server.log"


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


def start_foreground(config: ServerConfig) -> int:
    _refuse_taken_port(config)
    print(f"MLflow tracking server on {url(config)} (Ctrl-C stops it)", flush=True)
    os.execve(sys.executable, command(config), child_environment())
    return 0  # not reached


def start_background(config: ServerConfig) -> int:
    pid = running_pid(config)
    if pid is not None and healthy(config):
        print(f"already running at {url(config)} (pid {pid})")
        return 0
    _refuse_taken_port(config)
    pid_file, log_file = _state(config)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            command(config),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_environment(),
            start_new_session=True,  # its own process group: --stop ends the workers too
        )
    pid_file.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + config.health_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if healthy(config):
            print(f"MLflow tracking server running at {url(config)} (pid {process.pid})")
            print(f"  clients: export MLFLOW_TRACKING_URI={url(config)}")
            return 0
        time.sleep(0.3)
    _stop_group(process.pid)
    pid_file.unlink(missing_ok=True)
    tail = log_file.read_text(errors="replace").strip().splitlines()[-1:] or ["(empty log)"]
    raise KitError(
        f"the server did not answer {url(config)}/health within "
        f"{config.health_timeout_s:g}s; last log line: {tail[0][:300]} (log: {log_file})"
    )


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
    print(f"stopped the tracking server (pid {pid})")
    return 0


def status(config: ServerConfig) -> int:
    pid = running_pid(config)
    if pid is None:
        print("not running")
        return 3
    if healthy(config):
        print(f"running at {url(config)} (pid {pid}), healthy")
        return 0
    print(f"pid {pid} is alive but {url(config)}/health does not answer")
    return 1


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
