"""Sweeps whose jobs run in other processes: the joblib launcher's workers, and the
`sweep` MLproject entry point through `mlflow run`."""

from __future__ import annotations

from conftest import PYTHON, run_command
from test_sweep import runs_of, sweep


def test_joblib_parallel_sweep_is_nested_correctly():
    code = sweep(
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "model.C=0.1,1,10",
        experiment="parallel",
    )
    assert code == 0
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
