"""Sweeps whose jobs run in other processes: the joblib launcher's workers, and the
`sweep` MLproject entry point through `mlflow run`."""

from __future__ import annotations

import os
import signal
import subprocess

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
