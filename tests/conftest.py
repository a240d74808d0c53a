"""Shared fixtures: an isolated MLflow store per test, a composed config, a git copy of the kit.

MLflow is never mocked: each test gets a real SQLite tracking store under tmp_path.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from logistic_regression.config import Config, compose_config

PROJECT = Path(__file__).resolve().parent.parent
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Kit Test",
    "GIT_AUTHOR_EMAIL": "kit@test.invalid",
    "GIT_COMMITTER_NAME": "Kit Test",
    "GIT_COMMITTER_EMAIL": "kit@test.invalid",
}


@pytest.fixture(autouse=True)
def isolated_mlflow(tmp_path, monkeypatch):
    """No MLFLOW_* from the caller's shell, no run left open, a store under tmp_path.

    The working directory is tmp_path too, so MLflow's default artifact root (./mlruns)
    and the kit's default outputs/ land there, not in the repository.
    """
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("MLFLOW_"):
            monkeypatch.delenv(name)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
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
def config(base_config, tmp_path) -> Config:
    """A fresh copy of the default config with its outputs under tmp_path."""
    cfg = dataclasses.replace(
        base_config,
        data=dataclasses.replace(base_config.data, output=str(tmp_path / "outputs")),
        model=dataclasses.replace(base_config.model),
        evaluation=dataclasses.replace(base_config.evaluation),
        tracking=dataclasses.replace(base_config.tracking),
        storage=dataclasses.replace(base_config.storage),
    )
    return cfg


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_IDENTITY}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"git {' '.join(args)} failed: {done.stderr}"
    return done.stdout.strip()


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


@pytest.fixture
def git_server(tmp_path):
    """A real `git daemon` on 127.0.0.1, stopped when the test ends."""
    from servers import git_daemon

    with git_daemon(tmp_path / "git-server") as server:
        yield server


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
def private_s3(tmp_path, monkeypatch):
    """A SeaweedFS server of this test alone, which it may stop, restart or freeze;
    the test's environment points at it. Stopped by PID at the end."""
    from servers import S3Server

    server = S3Server(tmp_path / "private-s3")
    try:
        server.start(buckets=("kit",))
        for name, value in server.environment().items():
            monkeypatch.setenv(name, value)
        yield server
    finally:
        server.stop()
