"""`reproduce --env recorded`: a run recorded in a virtual environment with an older
scikit-learn (built with uv from the registry) is reproduced from the project's own
environment, in that environment rebuilt; `--env current` names what differs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from conftest import (
    PROJECT,
    PYTHON,
    copy_tracked_files,
    git,
    new_store,
    run_command,
)
from mlflow.tracking import MlflowClient

from logistic_regression import packages, rebuild
from logistic_regression.environment import THREAD_POOL_VARIABLES

OLDER = "scikit-learn==1.8.0"
CANARY = "ENVCANARY" + "5f3e9a1c"


class Older:
    """The recorded run: its store, its id, its checkout."""

    def __init__(self, uri: str, run_id: str, repo: Path):
        self.uri, self.run_id, self.repo = uri, run_id, repo


@pytest.fixture(scope="module")
def older_run(tmp_path_factory, migrated_store) -> Older:
    """A run made from a dirty checkout in a venv whose scikit-learn is older than the
    project's, with the project's other runtime pins."""
    root = tmp_path_factory.mktemp("older")
    venv = root / "venv"
    uv = rebuild.uv()
    subprocess.run(
        [uv, "venv", "--quiet", "--no-python-downloads", "--python", sys.executable, str(venv)],
        check=True,
    )
    declared = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    pins = [OLDER if d.startswith("scikit-learn==") else d for d in declared["dependencies"]]
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *pins],
        check=True,
        timeout=1200,
    )
    repo = copy_tracked_files(root / "kit")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "kit under test")
    conf = repo / "conf" / "model" / "logreg.yaml"  # a dirty tree: the run records a patch
    conf.write_text(conf.read_text().replace("C: 1.0", "C: 0.3"))
    uri = new_store(migrated_store, root / "mlflow.db")
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in THREAD_POOL_VARIABLES and name != "PYTHONPATH"
    }
    env.update(MLFLOW_TRACKING_URI=uri, LOGREG_SPOOL_DIR=str(root / "spool"))
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "logistic_regression.train"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    (run,) = MlflowClient(uri).search_runs(["1"])
    assert run.data.tags["mlflow.source.git.dirty"] == "true"
    return Older(uri, run.info.run_id, repo)


def environment_of(client: MlflowClient, run_id: str, into: Path) -> packages.Environment:
    return packages.parse(
        Path(client.download_artifacts(run_id, "environment.txt", str(into))).read_text()
    )


def test_a_run_is_reproduced_in_its_recorded_environment(older_run, tmp_path):
    client = MlflowClient(older_run.uri)
    recorded = environment_of(client, older_run.run_id, tmp_path / "a")
    assert recorded.packages["scikit-learn"] == "1.8.0"
    assert "scikit-learn" in (recorded.runtime or ())
    secrets = {"AWS_SECRET_ACCESS_KEY": CANARY, "MLFLOW_TRACKING_PASSWORD": CANARY}
    env = {"MLFLOW_TRACKING_URI": older_run.uri, "XDG_CACHE_HOME": str(tmp_path / "xdg"),
           **secrets}  # fmt: skip
    cache = tmp_path / "xdg" / "logistic-regression-kit" / "environments"

    started = time.monotonic()
    done = run_command(
        [PYTHON, "-m", "logistic_regression", "reproduce", older_run.run_id, "--env",
         "recorded", "--trust", str(older_run.repo)], cwd=tmp_path, env=env,
    )  # fmt: skip
    first = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"rebuilt from the record (cached in {cache}" in done.stdout
    assert "identical in Python and every package the run imports" in done.stdout
    assert "verdict: reproduced" in done.stdout
    (rerun,) = [
        run for run in client.search_runs(["1"])
        if run.data.tags.get("kit.reproduction_of") == older_run.run_id
    ]  # fmt: skip
    assert rerun.data.tags["reproduce.environment"] == "recorded"
    assert rerun.data.params["model.C"] == "0.3"  # the recorded patch was applied
    assert (
        environment_of(client, rerun.info.run_id, tmp_path / "b").packages["scikit-learn"]
        == "1.8.0"
    ), "the rerun ran with the recorded scikit-learn"

    # Again, through the MLproject entry point: the environment comes from the cache.
    started = time.monotonic()
    done = run_command(
        [PYTHON, "-m", "mlflow", "run", str(older_run.repo), "--env-manager", "local",
         "--experiment-id", "1", "-e", "reproduce", "-P", f"run_id={older_run.run_id}",
         "-P", "env=recorded"], cwd=tmp_path, env=env,
    )  # fmt: skip
    cached = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"rebuilt from the record (reused from {cache}" in done.stdout
    assert "verdict: reproduced" in done.stdout
    print(f"reproduce --env recorded: first {first:.1f} s, cached {cached:.1f} s (wall)")

    # The environment's files hold nothing of the environment it was built from.
    for path in cache.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_size < 1_000_000:
            assert CANARY.encode() not in path.read_bytes(), path

    # In this environment: the one difference that matters is named, the tools are not.
    done = run_command(
        [PYTHON, "-m", "logistic_regression", "reproduce", older_run.run_id,
         "--trust", str(older_run.repo)], cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert "this environment (--env current)" in done.stdout
    assert "    scikit-learn: 1.8.0 -> 1.9.1" in done.stdout
    table = [line for line in done.stdout.splitlines() if line.startswith("    ")]
    assert not any(line.strip().startswith(("pytest:", "ruff:")) for line in table)
    assert "other packages differ, none of which the run imports" in done.stdout


def test_ctrl_c_while_the_environment_builds_leaves_no_half_built_environment(older_run, tmp_path):
    client = MlflowClient(older_run.uri)
    before = len(client.search_runs(["1"]))
    cache = tmp_path / "cache"
    process = subprocess.Popen(
        [PYTHON, "-m", "logistic_regression", "reproduce", older_run.run_id, "--env",
         "recorded", "--env-cache", str(cache), "--trust", str(older_run.repo)],
        cwd=tmp_path, env={**os.environ, "MLFLOW_TRACKING_URI": older_run.uri},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not list(cache.glob("*/requested.txt")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the build never started"
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, out + err
    assert len(err.strip().splitlines()) == 1, err
    assert list(cache.iterdir()) == [], "a half-built environment was left in the cache"
    assert len(client.search_runs(["1"])) == before, "no reproduction run was opened"
