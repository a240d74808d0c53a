"""Sweeps against a real MLflow store: a Hydra multirun is one parent run with a child
per configuration, in this very process; failures are recorded and the sweep goes on."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from conftest import recorded_run
from mlflow.tracking import MlflowClient

from logistic_regression import sweep as sweep_flow
from logistic_regression import train
from logistic_regression.config import compose_config


def sweep(*overrides: str, experiment: str = "sweeps") -> int:
    return train.main(["-m", f"tracking.experiment_name={experiment}", *overrides])


def runs_of(experiment: str):
    client = MlflowClient()
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def test_a_multirun_is_one_parent_with_a_child_per_configuration(tmp_path):
    code = sweep("model.C=0.1,1", "model.penalty=l1,l2", "model.solver=liblinear")
    assert code == 0
    (parent,), children = runs_of("sweeps")
    assert len(children) == 4
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {(c.data.params["model.C"], c.data.params["model.penalty"]) for c in children} == {
        ("0.1", "l1"),
        ("0.1", "l2"),
        ("1.0", "l1"),
        ("1.0", "l2"),
    }
    assert all(c.info.status == "FINISHED" for c in children)

    best = max(children, key=lambda c: c.data.metrics["cv_roc_auc_mean"])
    tags = parent.data.tags
    assert parent.info.status == "FINISHED"
    # What the MLflow UI shows: a name saying what was swept, "Created by" and "Source"
    # on every run, the best child marked and linked from the parent's description.
    assert parent.info.run_name == "sweep model.C=0.1,1 model.penalty=l1,l2"
    for run in (parent, *children):
        assert run.data.tags["mlflow.user"] and run.data.tags["mlflow.source.type"] == "LOCAL"
        assert run.data.tags["mlflow.source.name"] == parent.data.tags["mlflow.source.name"]
    assert [c.info.run_id for c in children if c.data.tags.get("kit.sweep_best")] == [
        best.info.run_id
    ]
    link = f"(#/experiments/{parent.info.experiment_id}/runs/{best.info.run_id})"
    assert link in tags["mlflow.note.content"]
    assert tags["sweep.children"] == "4" and tags["sweep.failed"] == "0"
    assert tags["sweep.best_run_id"] == best.info.run_id
    assert tags["sweep.best.model.C"] == best.data.params["model.C"]
    assert tags["sweep.parameters"] == "model.C, model.penalty"
    assert parent.data.metrics["best_cv_roc_auc_mean"] == best.data.metrics["cv_roc_auc_mean"]

    summary = mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/sweep_summary.html")
    for child in children:
        assert child.info.run_id[:12] in summary
    assert summary.count("<img") == 2, "one chart per swept parameter"


def test_a_failing_configuration_is_recorded_and_the_sweep_goes_on(capsys):
    assert sweep("model.C=1,-1") == 0
    (parent,), children = runs_of("sweeps")
    failed = [c for c in children if c.info.status == "FAILED"]
    assert len(children) == 2 and len(failed) == 1
    assert "model.C=-1.0 is not allowed" in failed[0].data.tags["kit.error"]
    assert failed[0].data.params["model.C"] == "-1.0"
    assert failed[0].data.tags["mlflow.user"] == parent.data.tags["mlflow.user"]
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep.failed"] == "1"
    printed = capsys.readouterr()
    assert "2 configurations, 1 failed" in printed.out
    # One line per configuration (name, headline metric, status); the block once, at the end.
    name = "breast_cancer-target-C"
    (finished,) = [line for line in printed.out.splitlines() if line.startswith(name)]
    assert finished.startswith(f"{name}1-l2 (") and " ± " in finished
    assert finished.endswith(", FINISHED")
    assert printed.out.count("report.html") == 1 and printed.out.count("UI: ") == 1
    (refused,) = [line for line in printed.err.splitlines() if line.startswith(name)]
    assert refused.startswith(f"{name}-1-l2: FAILED: model.C=-1.0 is not allowed")
    # Hydra's per-configuration log file is made only for a line logged to it
    logs = list(Path("multirun").rglob("*.log"))
    assert [p for p in logs if p.stat().st_size == 0] == [], logs


def test_a_sweep_where_everything_fails_fails_its_parent():
    """Every configuration valid as config, each refused by the data (too few rows for
    400 folds): only running them finds that, so each is a FAILED child."""
    assert sweep("model.C=1,2", "evaluation.cv_folds=400") == 1
    (parent,), children = runs_of("sweeps")
    assert [c.info.status for c in children] == ["FAILED", "FAILED"]
    assert all("needs more rows" in c.data.tags["kit.error"] for c in children)
    assert parent.info.status == "FAILED"
    assert parent.data.tags["kit.error"] == "all 2 configurations failed"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["model.C=-1,-2"], "model.C=-1.0 is not allowed"),
        (["model.C=1,abc"], "model.C='abc' in the sweep"),
        (["model.C=1,2", "seed=-1"], "seed=-1 is not allowed"),
    ],
)
def test_a_sweep_whose_config_cannot_run_is_refused_before_its_parent(overrides, expected, capsys):
    """No configuration could run (or a value has the wrong type): one line, exit 2, and
    no parent run left behind."""
    assert sweep(*overrides) == 2
    assert expected in capsys.readouterr().err
    assert MlflowClient().get_experiment_by_name("sweeps") is None


def test_a_sweep_hydra_aborts_still_ends_its_parent(capsys):
    """A config group option that does not exist is found only when Hydra composes that
    job, after the parent exists: the parent ends FAILED, the error is one line."""
    assert sweep("model=logreg,nope") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope" in err
    (parent,), _ = runs_of("sweeps")
    assert parent.info.status == "FAILED"
    assert parent.data.tags["kit.sweep"] == "aborted"


def test_the_best_of_a_minimising_sweep_is_the_lowest_finished_child():
    """Ranking only: children recorded with chosen values (the highest, the lowest, and a
    failed one lower still), then the sweep's end picks and records the best."""
    config = compose_config(
        [
            "tracking.experiment_name=sweeps",
            "sweep.metric=test_log_loss",
            "sweep.direction=minimize",
        ]
    )
    parent = recorded_run("sweeps", "sweep-1", status=None)
    child = {"mlflow.parentRunId": parent}
    values = {"0.01": (0.30, "FINISHED"), "1.0": (0.10, "FINISHED"), "10.0": (0.01, "FAILED")}
    ids = {
        C: recorded_run(
            "sweeps", f"logreg-C{C}", {"model.C": C}, {"test_log_loss": loss}, status, tags=child
        )
        for C, (loss, status) in values.items()
    }
    assert sweep_flow.finish(config, parent) is True
    (finished,), children = runs_of("sweeps")
    assert finished.info.run_id == parent and len(children) == 3
    assert finished.info.status == "FINISHED"
    tags = finished.data.tags
    assert tags["sweep.best_run_id"] == ids["1.0"]
    assert tags["sweep.best.model.C"] == "1.0" and tags["sweep.direction"] == "minimize"
    assert tags["sweep.children"] == "3" and tags["sweep.failed"] == "1"
    assert finished.data.metrics == {"best_test_log_loss": 0.10}


def test_optuna_search_maximises_the_sweep_metric():
    code = sweep(
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.direction=maximize",
        "hydra.sweeper.sampler.seed=7",
        "model.C=interval(0.01,10)",
        experiment="optuna",
    )
    assert code == 0
    (parent,), children = runs_of("optuna")
    assert len(children) == 3
    best = max(c.data.metrics["cv_roc_auc_mean"] for c in children)
    assert parent.data.metrics["best_cv_roc_auc_mean"] == best


def test_a_sweep_runs_whatever_experiment_the_process_had_active():
    """A library user (or an earlier run of the process) set another experiment active:
    MLflow's fluent API would refuse to open the children outside it."""
    import mlflow

    mlflow.set_experiment("something-else")
    assert sweep("model.C=0.1,1") == 0
    (parent,), children = runs_of("sweeps")
    assert [c.info.status for c in children] == ["FINISHED", "FINISHED"]


def test_a_configuration_that_fails_once_its_run_exists_is_one_failed_child(monkeypatch):
    """A failure right after the child run opened (its artifact writer, here) ends that
    run FAILED; the sweep must not also record a second, made-up FAILED child for it."""
    from logistic_regression import lifecycle
    from logistic_regression.errors import StorageError

    def no_writer(*args, **kwargs):
        raise StorageError("the spool cannot be opened")

    monkeypatch.setattr(lifecycle, "open_writer", no_writer)
    assert sweep("model.C=0.5,1") == 1  # no configuration finished
    (parent,), children = runs_of("sweeps")
    assert len(children) == 2, [c.info.run_name for c in children]
    assert all(c.info.status == "FAILED" for c in children)
    assert all("the spool cannot be opened" in c.data.tags["kit.error"] for c in children)
