"""Sweeps whose jobs run in other processes: the joblib launcher's workers, and the
`sweep` MLproject entry point through `mlflow run`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import mlflow
from conftest import PYTHON, run_command
from mlflow.tracking import MlflowClient
from test_sweep import runs_of


def test_joblib_parallel_sweep_is_nested_correctly_and_exits(tmp_path):
    """In its own process: the joblib workers, each with the kit's background workers,
    must let the sweep exit (they once waited for each other forever at exit)."""
    command = [
        PYTHON,
        "-m",
        "logistic_regression.train",
        "-m",
        "tracking.experiment_name=parallel",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "model.C=0.1,1,10",
    ]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the sweep and every worker it left
        process.communicate()
        raise AssertionError("the joblib sweep did not exit within 300 s") from None
    assert process.returncode == 0, stderr[-3000:]
    (parent,), children = runs_of("parallel")
    assert len(children) == 3 and all(c.info.status == "FINISHED" for c in children)
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert parent.data.tags["sweep.children"] == "3"


def test_mlflow_run_sweep_entry_point_nests_under_its_own_run(kit_repo, tmp_path):
    done = run_command(
        [
            PYTHON,
            "-m",
            "mlflow",
            "run",
            str(kit_repo),
            "-e",
            "sweep",
            "--env-manager",
            "local",
            "--experiment-name",
            "entry",
            "-P",
            "sweep=model.C=0.5,2 'tracking.note=sweep note'",
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (parent,), children = runs_of("entry")
    assert parent.info.status == "FINISHED"
    assert "model.C=0.5,2" in parent.data.params["sweep"]  # as `mlflow run` logs it (quoted)
    assert len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {c.data.tags["mlflow.note.content"] for c in children} == {"sweep note"}


def _secret_sweep(tmp_path, configurations: str) -> tuple[list[str], dict[str, str], dict]:
    """A sweep given three secrets: a credential variable, a URI with a password inside
    free text (Hydra writes its `:` escaped in the launch lines it logs), and the
    webhook URL."""
    import secrets

    token = secrets.token_hex(6)
    canaries = {
        "credential variable": f"AWSCANARY{token}",
        "uri in text": f"URICANARY{token}",
        "webhook": f"HOOKCANARY{token}",
    }
    work = tmp_path / "work"
    work.mkdir()
    command = [
        PYTHON, "-m", "logistic_regression.train", "-m", f"model.C={configurations}",
        f"tracking.note='see http://u:{canaries['uri in text']}@example.invalid/x'",
        f"notify.webhook_url=http://127.0.0.1:9/hooks/{canaries['webhook']}",
        "tracking.experiment_name=secret-sweep",
    ]  # fmt: skip
    env = {
        **os.environ,
        "LOGREG_SPOOL_DIR": str(work / "spool"),
        "AWS_SECRET_ACCESS_KEY": canaries["credential variable"],
    }
    return command, canaries, {"cwd": work, "env": env}


def _assert_nothing_holds(canaries: dict[str, str], folder, printed: str) -> None:
    for whose, value in canaries.items():
        assert value not in printed, f"the {whose} was printed"
        for path in folder.rglob("*"):
            if path.is_file():
                assert value.encode() not in path.read_bytes(), f"the {whose} is in {path}"


def test_no_secret_of_a_sweep_is_printed_or_written(tmp_path):
    command, canaries, where = _secret_sweep(tmp_path, "0.1,1")
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, **where)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "#0 : " in done.stdout + done.stderr, "Hydra's launch lines were shown"
    assert list(where["cwd"].glob("multirun/*/multirun.yaml"))
    _assert_nothing_holds(canaries, where["cwd"], done.stdout + done.stderr)

    # A setting named like a secret is no setting of the kit: refused in one line that
    # does not repeat its value, before anything is written.
    password = "PWCANARY" + canaries["webhook"][-12:]
    refused = subprocess.run(
        [*command, f"+tracking.password={password}"], capture_output=True, text=True,
        timeout=600, cwd=tmp_path, env=where["env"],
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "tracking.password is not a setting" in refused.stderr
    assert password not in refused.stdout + refused.stderr


def signalled_when(command, ready, signum, never: str, **where):
    """Start `command` in its own process group, send the group `signum` once `ready()`
    (failing with `never` after 300 s), and return the process and its output."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, **where,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not ready() and process.poll() is None:
            assert time.monotonic() < deadline, never
            time.sleep(0.05)
        assert process.poll() is None, process.communicate()
        os.killpg(process.pid, signum)
        out, err = process.communicate(timeout=300)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return process, out, err


def test_a_sweep_stopped_by_sigterm_leaves_no_secret_behind(tmp_path):
    command, canaries, where = _secret_sweep(tmp_path, "0.1,1,10")
    process, out, err = signalled_when(
        command, lambda: bool(list(where["cwd"].glob("multirun/*/0"))), signal.SIGTERM,
        "the sweep's first configuration never began", **where,
    )  # fmt: skip
    assert process.returncode != 0
    assert list(where["cwd"].glob("multirun/*/multirun.yaml"))
    _assert_nothing_holds(canaries, where["cwd"], out + err)


def finished_children(experiment: str) -> list:
    found = MlflowClient().get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = MlflowClient().search_runs([found.experiment_id], "attributes.status = 'FINISHED'")
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def test_a_sweep_stopped_by_ctrl_c_is_resumed_without_running_a_configuration_again(tmp_path):
    """Ctrl-C (SIGINT to the process group) once the first configuration finished; then
    `sweep.resume=<parent>` with the same overrides: the finished ones are reused (the
    same runs), the rest run, and the parent ends FINISHED with all of them."""
    command = [
        PYTHON, "-m", "logistic_regression.train", "-m",
        "tracking.experiment_name=resumed", "model.C=0.1,1,10",
    ]  # fmt: skip
    process, out, err = signalled_when(
        command, lambda: bool(finished_children("resumed")), signal.SIGINT,
        "no configuration finished within 300 s", cwd=tmp_path,
    )  # fmt: skip
    assert process.returncode == 128 + signal.SIGINT, err[-3000:]
    (parent,), before = runs_of("resumed")
    assert parent.info.status == "KILLED" and parent.data.tags["kit.sweep"] == "aborted"
    # said as stopped, not as a finished sweep, with how to go on
    assert f"Sweep {parent.info.run_id} stopped: " in out, out
    assert f"resume it: add sweep.resume={parent.info.run_id} to the sweep's own" in out
    done = {c.data.params["model.C"]: c.info.run_id for c in before if c.info.status == "FINISHED"}
    assert 1 <= len(done) < 3, "the sweep was not stopped between its configurations"

    resumed = subprocess.run(
        [*command, f"sweep.resume={parent.info.run_id}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for run_id in done.values():
        assert f"reused run {run_id}" in resumed.stdout
    (after,), children = runs_of("resumed")
    assert after.info.run_id == parent.info.run_id and after.info.status == "FINISHED"
    finished = {}
    for child in children:
        if child.info.status == "FINISHED":
            assert child.data.params["model.C"] not in finished, "a configuration ran twice"
            finished[child.data.params["model.C"]] = child.info.run_id
    assert sorted(finished) == ["0.1", "1.0", "10.0"]
    assert {c: finished[c] for c in done} == done, "a finished configuration ran again"
    for stopped in (c for c in children if c.info.status != "FINISHED"):  # the Ctrl-C'd one
        if "model.C" in stopped.data.params:  # (none when stopped before it recorded them)
            assert (
                stopped.data.tags["kit.superseded_by"] == finished[stopped.data.params["model.C"]]
            )
    tags = after.data.tags
    assert tags["sweep.children"] == "3" and tags["sweep.failed"] == "0"
    assert tags["sweep.reused"] == str(len(done)) and "kit.error" not in tags
    assert tags["sweep.best_run_id"] in finished.values()
    summary = mlflow.artifacts.load_text(f"{after.info.artifact_uri}/sweep_summary.html")
    assert "3 configurations, 0 failed" in summary
    assert all(run_id[:12] in summary for run_id in finished.values())
