"""The team server against the embedded SQLite store, under a team's load, side by side.

Starts, on 127.0.0.1 and free ports, the real team setup of docs/team-server.md (the
test suite's `tests/servers.py`): a throwaway PostgreSQL cluster, a SeaweedFS S3 server,
and `mlflow server` through `python -m logistic_regression.server --background` with
basic-auth and 2 workers; the admin creates one user. Then:

* team server: --runs kit training runs (`python -m logistic_regression train
  tracking=team`) from --clients client processes started at once, each running its
  share in sequence, as the user (no S3 keys, no database password);
* SQLite:      the same runs against one shared SQLite store file (`sqlite:///.../
  mlflow.db`, artifacts in one ./mlruns), as a team on one machine would share it.

Each backend gets one warm-up run first (not measured: it creates the experiment and
the store's tables). Measured: runs per minute (runs / wall time from the first start
to the last end) and the run time of each `train` process, p50 and p95 (nearest rank).
Prints both side by side; every server and process it started is stopped.

    python bench/team_server.py [--runs 16] [--clients 8]
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "tests"))

EXPERIMENT = "bench-team"
USER = "bench-user"


def nearest_rank(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def client_environment(spool: Path, login: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_", "PG"))}
    return {**env, "PYTHONPATH": str(PROJECT), "LOGREG_SPOOL_DIR": str(spool), **login}


def train(cwd: Path, env: dict[str, str], uri: str, output: Path, tracking: str) -> float:
    """One kit run; its wall time. A failed run raises (the figures would lie)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "logistic_regression", "train", f"tracking={tracking}",
         f"tracking.uri={uri}", f"tracking.experiment_name={EXPERIMENT}",
         f"data.output={output}"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    took = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"a run failed (exit {done.returncode}): {done.stderr.strip()[-800:]}")
    return took


def load(
    root: Path, uri: str, tracking: str, login: dict[str, str], runs: int, clients: int,
    shared_cwd: bool,
) -> tuple[float, list[float], list[str]]:  # fmt: skip
    """(wall time, run times, failures) of `runs` runs from `clients` processes at once."""
    root.mkdir(parents=True)
    warm = root / "warm-up"
    warm.mkdir()
    train(root if shared_cwd else warm, client_environment(warm / "spool", login), uri,
          warm / "outputs", tracking)  # fmt: skip
    times: list[float] = []
    failures: list[str] = []
    shares = [runs // clients + (i < runs % clients) for i in range(clients)]

    def client(index: int) -> None:
        folder = root / f"client-{index}"
        folder.mkdir()
        env = client_environment(folder / "spool", login)
        for _ in range(shares[index]):
            try:
                times.append(
                    train(root if shared_cwd else folder, env, uri, folder / "outputs", tracking)
                )
            except Exception as exc:
                failures.append(f"client {index}: {exc}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started, times, failures


def team_server(root: Path, runs: int, clients: int):
    from mlflow.server import get_app_client
    from servers import free_port, postgres, seaweedfs

    admin_password = "bench-admin-" + secrets.token_hex(8)
    user_password = "bench-user-" + secrets.token_hex(8)
    root.mkdir(parents=True)
    password_file = root / "admin-password"
    password_file.write_text(admin_password + "\n")
    password_file.chmod(0o600)
    with seaweedfs(root / "s3", buckets=("kit",)) as s3, postgres() as database:
        port = free_port()
        settings = [
            "--port", str(port), f"state_dir={root / 'state'}",
            f"backend_store_uri={database.create_database('mlflow')}",
            f"auth_database_uri={database.create_database('mlflow_auth')}",
            "artifacts_destination=s3://kit/team", "auth=true", "workers=2",
        ]  # fmt: skip
        server_env = {
            **os.environ, "PYTHONPATH": str(PROJECT), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            **s3.environment(), **database.environment(),
            "LOGREG_SERVER_ADMIN_PASSWORD_FILE": str(password_file),
        }  # fmt: skip
        server = [sys.executable, "-m", "logistic_regression.server"]
        started = subprocess.run(
            [*server, "--background", *settings], env=server_env, capture_output=True, text=True
        )
        try:
            if started.returncode != 0:
                raise RuntimeError(f"the server did not start: {started.stderr.strip()}")
            url = f"http://127.0.0.1:{port}"
            admin = {
                "MLFLOW_TRACKING_USERNAME": "admin",
                "MLFLOW_TRACKING_PASSWORD": admin_password,
            }
            os.environ.update(admin)  # this process's MLflow calls as the admin
            try:
                get_app_client("basic-auth", tracking_uri=url).create_user(USER, user_password)
            finally:
                for name in admin:
                    os.environ.pop(name, None)
            login = {"MLFLOW_TRACKING_USERNAME": USER, "MLFLOW_TRACKING_PASSWORD": user_password}
            return load(root / "runs", url, "team", login, runs, clients, shared_cwd=False)
        finally:
            subprocess.run([*server, "--stop", *settings], env=server_env, capture_output=True)


def sqlite(root: Path, runs: int, clients: int):
    store = root / "shared"
    store.mkdir(parents=True)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    return load(root / "runs", uri, "local", {}, runs, clients, shared_cwd=True)


def row(name: str, wall: float, times: list[float], failures: list[str], runs: int) -> str:
    done = len(times)
    if not times:
        return f"  {name:<26} all {runs} runs failed"
    return (
        f"  {name:<26} {done:>3}/{runs:<3} {wall:7.0f} s {done / wall * 60:8.1f}"
        f" {statistics.median(times):8.1f} s {nearest_rank(times, 0.95):8.1f} s"
        + (f"   ({len(failures)} failed)" if failures else "")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=16, help="measured runs per backend")
    parser.add_argument("--clients", type=int, default=8, help="client processes at once")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kit-bench-team-") as scratch:
        root = Path(scratch)
        team = team_server(root / "team", args.runs, args.clients)
        local = sqlite(root / "sqlite", args.runs, args.clients)
    print(f"{args.runs} kit runs from {args.clients} clients at once, {os.cpu_count()} cores")
    print(f"  {'backend':<26} {'runs':>7} {'wall':>9} {'runs/min':>8} {'p50':>10} {'p95':>10}")
    print(row("team server (PG+S3+auth)", *team, args.runs))
    print(row("SQLite, one shared file", *local, args.runs))
    for failure in [*team[2], *local[2]]:
        print(f"  failed: {failure[:300]}")
    return 1 if team[2] or local[2] else 0


if __name__ == "__main__":
    sys.exit(main())
