"""Shared fixtures: an isolated MLflow store per test, a composed config, a git copy of the kit.

MLflow is never mocked: each test gets a real SQLite tracking store under tmp_path. The
store is created and migrated once per session (by a real MlflowClient, on a template
file) and copied per test: migrating a fresh SQLite store costs seconds, a copy costs
milliseconds, and the copy is the same database MLflow would have made.

End-to-end tests are the ones under tests/e2e/, and only those: they are marked `e2e`
here, and a test elsewhere that starts the kit or MLflow in another process fails with
a message saying where it belongs. `python -m pytest -m "not e2e"` is the fast subset.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import reaper

from logistic_regression import background, environment
from logistic_regression.config import Config, compose_config

PROJECT = Path(__file__).resolve().parent.parent
E2E_DIR = Path(__file__).resolve().parent / "e2e"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Kit Test",
    "GIT_AUTHOR_EMAIL": "kit@test.invalid",
    "GIT_COMMITTER_NAME": "Kit Test",
    "GIT_COMMITTER_EMAIL": "kit@test.invalid",
}


# Modules that start a Ray cluster of their own: never two at once (parallel runs).
ONE_AT_A_TIME = {"test_ray_sweep.py": "ray", "test_team_ray.py": "ray"}


def pytest_collection_modifyitems(config, items):
    """One definition of e2e: the folder. Its tests get the marker; nothing else may.

    Parallel runs (pytest-xdist, `--dist loadgroup`): a module's tests stay on one worker,
    so a module's servers start once; the Ray modules share one worker."""
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        group = ONE_AT_A_TIME.get(Path(item.path).name, module)
        item.add_marker(pytest.mark.xdist_group(group))
        if E2E_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)
        elif item.get_closest_marker("e2e"):
            raise pytest.UsageError(
                f"{item.nodeid} is marked e2e outside tests/e2e/; move it there instead"
            )


def _descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every living process below `pid`, read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent:
                frontier.append(child)
                try:
                    raw = Path(f"/proc/{child}/cmdline").read_bytes()
                except OSError:
                    continue
                found.append((child, raw.replace(b"\0", b" ").decode(errors="replace").strip()))
    return found


def pytest_sessionfinish(session, exitstatus):
    """Every process a test started is stopped by the test. One left behind (a server, an
    uploader, a worker pool) is killed here and fails the suite: left alone, it can hold
    the suite's output open and hang whatever waits for it to end."""

    if session.config.pluginmanager.hasplugin("dsession"):
        return  # pytest-xdist's controller: each worker checks the processes of its own
    background.stop()  # the kit's own workers, when the in-process runs forked them
    keep = reaper.pid()  # it ends with this process, after killing what a test left
    left = [(pid, command) for pid, command in _descendants(os.getpid()) if command and pid != keep]
    for pid, _ in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    if left:
        listing = "\n".join(f"  {pid}: {command[:200]}" for pid, command in left)
        print(f"\nprocesses left running by the tests (now killed):\n{listing}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# What a user runs: MLflow's CLI and the kit's commands. (The kit's own helper processes,
# such as its upload worker, are part of an in-process run and stay allowed.)
ENTRY_MODULES = {
    "mlflow",
    "logistic_regression",
    "logistic_regression.train",
    "logistic_regression.mlproject",
    "logistic_regression.sweep",
    "logistic_regression.server",
}


def _starts_kit_or_mlflow(args) -> bool:
    argv = [str(a) for a in ([args] if isinstance(args, str | os.PathLike) else args)]
    if len(argv) == 1:
        argv = shlex.split(argv[0])
    modules = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "-m"]
    return (
        any(m in ENTRY_MODULES for m in modules)
        or (bool(argv) and Path(argv[0]).name == "mlflow")
        or any(Path(arg).name == "start_mlflow.sh" for arg in argv)
    )


@pytest.fixture(autouse=True)
def e2e_only_in_subprocesses(request, monkeypatch):
    """Outside tests/e2e/, starting `mlflow`, the kit's CLI or its server script fails."""
    if request.node.get_closest_marker("e2e"):
        return
    original = subprocess.Popen.__init__

    def guarded(self, args, *rest, **kwargs):
        if _starts_kit_or_mlflow(args):
            pytest.fail(
                f"{request.node.nodeid} starts {args!r} in a subprocess: "
                "an end-to-end test, it belongs under tests/e2e/",
                pytrace=False,
            )
        original(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded)


@pytest.fixture(scope="session")
def env_cache(tmp_path_factory) -> Path:
    """The session's cache of environments `reproduce --env recorded` rebuilds (never the
    user's): a record with the same packages is built once, as for a user."""
    return tmp_path_factory.getbasetemp() / "environments"


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory) -> Path:
    """An empty SQLite tracking store that a real MlflowClient created and migrated."""
    from mlflow.tracking import MlflowClient

    template = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    client = MlflowClient(f"sqlite:///{template}")
    client.search_experiments()  # creates the tables, runs every migration
    client.search_registered_models()
    client._tracking_client.store.engine.dispose()  # every change is on disk; no handle left
    return template


def new_store(migrated_store: Path, path: Path) -> str:
    """A copy of the migrated store at `path`, as a tracking URI."""
    shutil.copyfile(migrated_store, path)
    return f"sqlite:///{path}"


@pytest.fixture(autouse=True)
def root_log_handlers_restored():
    """A command run in-process (a sweep's `hydra.main`, `logging.basicConfig` in train)
    may add handlers to the root logger that write to this test's captured stream; the
    next test in the worker must not log into that closed stream."""
    before = list(logging.root.handlers)
    yield
    for handler in [h for h in logging.root.handlers if h not in before]:
        logging.root.removeHandler(handler)


@pytest.fixture(autouse=True)
def isolated_mlflow(tmp_path, monkeypatch, migrated_store):
    """No MLFLOW_* from the caller's shell, no run left open, a store under tmp_path.

    The working directory is tmp_path too, so MLflow's default artifact root (./mlruns)
    and the kit's default outputs/ land there, not in the repository.
    """
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("MLFLOW_"):
            monkeypatch.delenv(name)
    uri = new_store(migrated_store, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("LOGREG_SPOOL_DIR", str(tmp_path / "spool"))
    mlflow.set_tracking_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture(scope="session")
def base_config() -> Config:
    return compose_config([])


@pytest.fixture
def config(base_config, tmp_path, isolated_mlflow) -> Config:
    """A fresh copy of the default config with its outputs under tmp_path."""
    cfg = dataclasses.replace(
        base_config,
        data=dataclasses.replace(base_config.data, output=str(tmp_path / "outputs")),
        model=dataclasses.replace(base_config.model),
        evaluation=dataclasses.replace(base_config.evaluation),
        # The store and spool isolated_mlflow chose (conf/ reads them from the
        # environment when a config is composed; base_config was composed once).
        tracking=dataclasses.replace(base_config.tracking, uri=isolated_mlflow),
        storage=dataclasses.replace(base_config.storage, spool_dir=str(tmp_path / "spool")),
    )
    return cfg


def recorded_run(
    experiment: str,
    name: str,
    params: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
    status: str | None = "FINISHED",
    texts: dict[str, str] | None = None,
    client=None,
    tags: dict[str, str] | None = None,
) -> str:
    """A run made directly through MlflowClient in the current (real) store, with the
    params, metrics and text artifacts given: for tests about ranking, listing and
    comparing runs rather than about training them. `status=None` leaves it RUNNING."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = client or MlflowClient()
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run_id = client.create_run(experiment_id, run_name=name).info.run_id
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, 0, 0) for k, v in (metrics or {}).items()],
        params=[Param(k, str(v)) for k, v in (params or {}).items()],
        tags=[RunTag(k, v) for k, v in (tags or {}).items()],
    )
    for path, text in (texts or {}).items():
        client.log_text(run_id, text, path)
    if status:
        client.set_terminated(run_id, status)
    return run_id


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_IDENTITY}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"git {' '.join(args)} failed: {done.stderr}"
    return done.stdout.strip()


def committed_repo(folder: Path, files: dict[str, str], message: str = "one") -> Path:
    """A new git repository at `folder` holding `files` (name -> text) in one commit."""
    folder.mkdir(parents=True)
    git(folder, "init", "-q", "-b", "main")
    for name, text in files.items():
        (folder / name).write_text(text)
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", message)
    return folder


def copy_tracked_files(destination: Path) -> Path:
    """The project's tracked files (as they are now on disk), nothing the runs wrote."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = PROJECT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def fresh_environment() -> dict[str, str]:
    """This environment for a fresh interpreter: without the thread limits a command
    holds (it sets its own), with the kit importable."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in environment.THREAD_POOL_VARIABLES
    }
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT), env.get("PYTHONPATH", "")])
    return env


def last_json_line(
    script: Path, text: str, *args: str, environment: dict[str, str] | None = None
) -> tuple[dict, str]:
    """Run `text` as `script` in a fresh interpreter (with `environment` added): its last
    stdout line, as JSON, and its stderr (for the assertion messages)."""
    script.write_text(text)
    done = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**fresh_environment(), **(environment or {})},
    )
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


def fake_checkout(folder: Path) -> Path:
    """A folder the kit takes for a checkout of itself (its MLproject and package)."""
    folder.mkdir()
    (folder / "MLproject").write_text("name: logistic-regression-kit\n")
    (folder / "logistic_regression").mkdir()
    (folder / "logistic_regression" / "mlproject.py").write_text("")
    return folder


@pytest.fixture
def kit_repo(tmp_path) -> Path:
    """A copy of the kit made into a fresh git repository with one commit."""
    repo = copy_tracked_files(tmp_path / "kit")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "kit under test")
    return repo


def run_command(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout=600):
    """Run a command with the test's environment (its MLFLOW_TRACKING_URI included)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


PYTHON = sys.executable


def returns_within(seconds: float, function, *args, **kwargs):
    """`function(*args, **kwargs)`, failing the test (not hanging it) if it has not returned
    after `seconds`. For checking that something is bounded: pass a generous bound; the
    assertion is that it returns at all while what it waits on still hangs."""
    import threading

    outcome: dict[str, object] = {}

    def call() -> None:
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as exc:  # handed to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{function.__name__} did not return within {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.fixture
def git_server(tmp_path):
    """A real `git daemon` on 127.0.0.1, stopped when the test ends."""
    from servers import git_daemon

    with git_daemon(tmp_path / "git-server") as server:
        yield server


@pytest.fixture
def closed_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def silent_server():
    """A tracking server address that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


@pytest.fixture(scope="module")
def ray_nodes(tmp_path_factory):
    """Two Ray nodes on 127.0.0.1 for a module's tests (tests/servers.py); every process
    they started is checked gone."""
    from servers import ray_cluster

    with ray_cluster(PROJECT, tmp_path_factory.mktemp("ray-logs")) as cluster:
        yield cluster
    assert not cluster.head.processes() and not cluster.worker.processes()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """One real SeaweedFS S3 server for the session, with a `kit` bucket; stopped at the end."""
    from servers import seaweedfs

    with seaweedfs(tmp_path_factory.mktemp("seaweedfs"), buckets=("kit",)) as server:
        yield server


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """Point this test's MLflow and kit at the S3 server (endpoint and credentials)."""
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture
def private_s3(s3_server, monkeypatch):
    """The session's SeaweedFS server, this test's to freeze, stop and restart; the
    test's environment points at it. Afterwards it runs and answers again for the next
    test (tests run one after another in a worker): a server per test cost 3 s each."""
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    try:
        yield s3_server
    finally:
        s3_server.thaw()
        if s3_server.process is not None and s3_server.process.poll() is not None:
            s3_server.stop()  # it died (or a restart failed half-way): start it again
        if s3_server.process is None:
            s3_server.start()
        s3_server.wait_ready()
