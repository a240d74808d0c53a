"""Sweeps whose jobs run in other processes: the joblib launcher's workers, and the
`sweep` MLproject entry point through `mlflow run`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

from conftest import PYTHON, run_command
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


def test_a_sweep_stopped_by_sigterm_leaves_no_secret_behind(tmp_path):
    command, canaries, where = _secret_sweep(tmp_path, "0.1,1,10")
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, **where,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not list(where["cwd"].glob("multirun/*/0")) and process.poll() is None:
            assert time.monotonic() < deadline, "the sweep's first configuration never began"
            time.sleep(0.05)
        assert process.poll() is None, process.communicate()
        os.killpg(process.pid, signal.SIGTERM)
        out, err = process.communicate(timeout=300)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    assert process.returncode != 0
    assert list(where["cwd"].glob("multirun/*/multirun.yaml"))
    _assert_nothing_holds(canaries, where["cwd"], out + err)
