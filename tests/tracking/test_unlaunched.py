"""Runs `mlflow run` opened and never handed to the kit, as `sync` finds and settles them
(the real signal case is in e2e/test_signals.py)."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from logistic_regression import launcher
from logistic_regression.provenance import KIT_VERSION
from logistic_regression.tracking import unlaunched

PROJECT = {"mlflow.source.type": "PROJECT"}


def test_only_runs_never_handed_over_are_settled_and_only_on_a_local_store(isolated_mlflow):
    client = MlflowClient(isolated_mlflow)
    experiment = client.create_experiment("launches")
    orphan = client.create_run(experiment, tags=PROJECT).info.run_id
    taken = client.create_run(experiment, tags={**PROJECT, KIT_VERSION: "0.1.0"}).info.run_id
    own = client.create_run(experiment).info.run_id  # opened by the kit itself (LOCAL)
    done = client.create_run(experiment, tags=PROJECT).info.run_id
    client.set_terminated(done, "FINISHED")

    assert unlaunched.unlaunched_runs(client) == [orphan]
    server = unlaunched.settle(isolated_mlflow, local=False)
    assert server.left == (orphan,) and "another machine" in server.why and not server.settled
    assert client.get_run(orphan).info.status == "RUNNING"

    outcome = unlaunched.settle(isolated_mlflow, local=True)
    assert outcome.settled == (orphan,)
    run = client.get_run(orphan)
    assert run.info.status == "KILLED" and run.data.tags["kit.error"] == unlaunched.REASON
    assert [client.get_run(r).info.status for r in (taken, own, done)] == [
        "RUNNING",
        "RUNNING",
        "FINISHED",
    ]


def test_mlflow_run_is_recognised_however_it_was_started():
    assert launcher.is_mlflow_run(["/venv/bin/python", "/venv/bin/mlflow", "run", "."])
    assert launcher.is_mlflow_run(["python", "-m", "mlflow", "run", "git://host/kit"])
    assert not launcher.is_mlflow_run(["python", "-m", "mlflow", "server"])
    assert not launcher.is_mlflow_run(["python", "-m", "logistic_regression", "run"])
    assert not launcher.is_mlflow_run([])
    assert launcher.launcher() is None  # pytest was not started by `mlflow run`
