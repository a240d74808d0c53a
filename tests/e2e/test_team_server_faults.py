"""The team server under faults: the tracking server stopped for 20 s in the middle of
runs and started again, and its PostgreSQL stopped in the middle of a run. Each run
either completes or ends with an honest status (never left RUNNING once `sync` has
run), keeps in the spool what it could not store, and `python -m logistic_regression
sync` (same server, same login) stores it: the bytes the server gives back are the
bytes the spool held (or that the run wrote to its output), the report and the model's
files are there, and the run ends FINISHED with kit.artifacts=complete once its files
are stored. A client whose store fails says so in one line on stderr, no traceback,
within a bound (MLflow's HTTP retries and request timeout, set small here).

A module of its own: it stops and restarts its server and database, which the other
team modules share.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import mlflow
from conftest import PYTHON
from team_setup import (  # noqa: F401 - team_fixture: the module's `team`
    WRITER,
    Team,
    assert_no_secret,
    client_env,
    error_lines,
    kit,
    logged_in,
    runs_of,
    team_fixture,
)

from logistic_regression.storage.spool import Journal

OUTAGE_S = 20
# A client that gives up on a dead store quickly: one try of at most 5 s per request.
BOUNDED_CLIENT = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


def start_training(team: Team, folder: Path, env: dict[str, str], experiment: str):
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [PYTHON, "-m", "logistic_regression", "train", "tracking=team",
         f"tracking.uri={team.url}", f"tracking.experiment_name={experiment}",
         f"data.output={folder / 'outputs'}"],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_until_recording(team: Team, experiment: str, count: int, processes, timeout=240):
    """The runs' ids once `count` runs are RUNNING and have opened their spool folders
    (kit.artifacts=pending): in the middle of their recording."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            assert process.poll() is None, process.communicate()
        found = [
            run
            for run in runs_of(team, experiment)
            if run.info.status == "RUNNING" and run.data.tags.get("kit.artifacts") == "pending"
        ]
        if len(found) == count:
            return [run.info.run_id for run in found]
        time.sleep(0.2)
    raise AssertionError(f"{count} runs of {experiment!r} were not recording after {timeout} s")


def spooled(spool: Path) -> dict[str, bytes]:
    """What the spool holds and has not stored: destination URI -> bytes."""
    held: dict[str, bytes] = {}
    for journal in spool.glob("*/journal.jsonl"):
        for entry in Journal.read(journal.parent).pending:
            held[entry.destination] = (journal.parent / entry.source).read_bytes()
    return held


def downloaded(team: Team, uri: str, folder: Path) -> bytes:
    with logged_in(WRITER, team.passwords[WRITER]):
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=str(folder), tracking_uri=team.url
        )
    return Path(path).read_bytes()


def assert_stored(team: Team, run_ids: list[str], held: dict[str, bytes], tmp_path: Path):
    """Every run FINISHED and complete; what the spool held is what the server gives
    back, byte for byte; each run's report and model files are there."""
    with logged_in("admin", team.admin_password):
        client = team.admin()
        for run_id in run_ids:
            run = client.get_run(run_id)
            assert run.info.status == "FINISHED", (run_id, run.info.status, run.data.tags)
            assert run.data.tags["kit.artifacts"] == "complete", run.data.tags
            assert "kit.artifacts_pending" not in run.data.tags
            assert "kit.error" not in run.data.tags, run.data.tags["kit.error"]
            listed = {a.path for a in client.list_artifacts(run_id)}
            assert {"report.html", "config.yaml", "predictions.csv"} <= listed, listed
            (model,) = client.search_logged_models(
                experiment_ids=[run.info.experiment_id],
                filter_string=f"source_run_id = '{run_id}'",
            )
            assert str(model.status) == "READY"
            files = {a.path for a in client.list_logged_model_artifacts(model.model_id)}
            assert "MLmodel" in files and any(f.startswith("model.") for f in files), files
            report = downloaded(team, f"{run.info.artifact_uri}/report.html", tmp_path / run_id)
            assert run_id.encode() in report
    for index, (uri, content) in enumerate(sorted(held.items())):
        assert downloaded(team, uri, tmp_path / f"held-{index}") == content, uri


def test_the_tracking_server_stopped_for_20_s_in_the_middle_of_runs(team, tmp_path):
    experiment, count = "team-server-outage", 2
    env = client_env(tmp_path, WRITER, team.passwords[WRITER])
    processes = [
        start_training(team, tmp_path / f"client-{i}", env, experiment) for i in range(count)
    ]
    started = None
    try:
        run_ids = wait_until_recording(team, experiment, count, processes)
        stopped = team.script("--stop")
        assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
        time.sleep(OUTAGE_S)
        held = spooled(tmp_path / "spool")  # logged while the server was down: not stored
        started = team.script("--background")  # the same settings, state_dir and port
        assert started.returncode == 0, started.stdout + started.stderr
        results = [process.communicate(timeout=600) for process in processes]
    finally:
        if started is None:  # the module's other test and its teardown need the server
            team.script("--background")
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    for process, (out, err) in zip(processes, results, strict=True):
        team.outputs += [out, err]
        assert process.returncode in (0, 2), err[-3000:]
        lines = error_lines(err)  # no traceback, whatever happened
        assert len(lines) == (process.returncode != 0), err

    print(f"during the outage {len(held)} files waited in the spool; exit codes "
          f"{[p.returncode for p in processes]}")  # fmt: skip
    held.update(spooled(tmp_path / "spool"))
    with logged_in("admin", team.admin_password):
        for run_id in run_ids:
            run = team.admin().get_run(run_id)
            if run.info.status != "FINISHED":  # an honest end: why, and the files wait
                assert run.info.status == "FAILED", run.info.status
                assert run.data.tags["kit.error"] and run.data.tags["kit.artifacts"] == "pending"
    env["MLFLOW_TRACKING_URI"] = team.url
    synced = kit(team, tmp_path, env, "sync")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "Traceback" not in synced.stderr
    assert not any((tmp_path / "spool").glob("*/journal.jsonl")), "the spool is settled"

    assert_stored(team, run_ids, held, tmp_path / "downloads")
    written = {p.read_bytes() for p in tmp_path.glob("client-*/outputs/**/*") if p.is_file()}
    for run_id in run_ids:  # predictions: as the run wrote them to its output
        stored = downloaded(team, f"runs:/{run_id}/predictions.csv", tmp_path / f"p-{run_id}")
        assert stored in written
    assert_no_secret(team, team.outputs)


def test_postgresql_stopped_in_the_middle_of_a_run(team, tmp_path):
    experiment = "team-database-outage"
    env = {**client_env(tmp_path, WRITER, team.passwords[WRITER]), **BOUNDED_CLIENT}
    process = start_training(team, tmp_path / "client", env, experiment)
    try:
        (run_id,) = wait_until_recording(team, experiment, 1, [process])
        team.database.stop()
        stopped_at = time.monotonic()
        out, err = process.communicate(timeout=180)
        took = time.monotonic() - stopped_at
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        if team.database.process is None:
            team.database.start()
    team.outputs += [out, err]
    assert process.returncode == 2, err[-3000:]
    (line,) = error_lines(err)
    assert err.strip() == line, err  # one line, nothing else
    assert run_id in line and "sync" in line, line
    print(f"the client gave up {took:.0f} s after the database stopped: {line}")
    assert took < 60, f"the client took {took:.0f} s to give up on the store"
    folder = tmp_path / "spool" / run_id
    assert (folder / "journal.jsonl").is_file(), "the run's folder is kept for `sync`"
    held = spooled(tmp_path / "spool")  # what it logged before the store failed, if anything

    logged = Journal.read(folder).entries  # what the run had logged when the store failed

    env["MLFLOW_TRACKING_URI"] = team.url
    synced = kit(team, tmp_path, env, "sync")
    print(synced.stdout + synced.stderr)
    assert "Traceback" not in synced.stderr
    with logged_in("admin", team.admin_password):
        run = team.admin().get_run(run_id)
    assert run.info.status == "FAILED", run.info.status
    if not logged:  # the database stopped before the run logged a file (timing-dependent)
        said = synced.stdout + synced.stderr
        assert "artifacts none, status FAILED" in said and run_id in said, said
        # Files the worker had written but the run never logged stay for the user to
        # delete (sync cannot attach them to an ended run), and sync says so: exit 1.
        kept = "the run wrote but never logged (it ended first) are kept in" in said
        assert synced.returncode == (1 if kept else 0), said
        assert run.data.tags["kit.error"].startswith("the tracking store failed: ")
        assert_no_secret(team, team.outputs)
        return
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert not any((tmp_path / "spool").glob("*/journal.jsonl")), "the spool is settled"
    assert run.data.tags["kit.artifacts"] in ("complete", "partial", "none"), run.data.tags
    assert run.data.tags["kit.error"].startswith("the tracking store failed: it answered HTTP 5")
    assert f"run {run_id}: artifacts {run.data.tags['kit.artifacts']}, status FAILED" in (
        synced.stdout
    )
    for index, (uri, content) in enumerate(sorted(held.items())):
        assert downloaded(team, uri, tmp_path / f"held-{index}") == content, uri
    assert_no_secret(team, team.outputs)
