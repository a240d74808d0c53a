"""One experiment however a run starts: in a checkout of the kit, a run started without
an experiment (what `mlflow run .` does) lands in the kit's experiment."""

from __future__ import annotations

import mlflow
import mlflow.tracking.fluent
import pytest
from conftest import fake_checkout
from mlflow.tracking import MlflowClient

from logistic_regression import console
from logistic_regression.tracking import runs


@pytest.fixture(autouse=True)
def no_active_experiment(monkeypatch):
    """As in a fresh process: an earlier test's run left MLflow's active experiment set
    (the kit sets it when it opens a run), which would win over the default providers."""
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)


def experiment_of_new_run() -> str:
    with mlflow.start_run() as run:
        experiment_id = run.info.experiment_id
    return MlflowClient().get_experiment(experiment_id).name


def test_a_run_without_experiment_in_a_checkout_lands_in_the_kit_experiment(tmp_path, monkeypatch):
    monkeypatch.chdir(fake_checkout(tmp_path / "kit"))
    assert experiment_of_new_run() == "logistic-regression"
    assert experiment_of_new_run() == "logistic-regression"  # found, not created twice


def test_elsewhere_mlflow_keeps_its_default(tmp_path):
    assert experiment_of_new_run() == "Default"


def test_an_explicit_experiment_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(fake_checkout(tmp_path / "kit"))
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "mine")
    mlflow.set_experiment("mine")
    assert experiment_of_new_run() == "mine"


def test_a_mlflow_run_in_default_says_where_best_looks(config, monkeypatch, capsys):
    with mlflow.start_run(experiment_id=runs.DEFAULT_EXPERIMENT_ID) as run:
        monkeypatch.setenv("MLFLOW_RUN_ID", run.info.run_id)
        console.warn_other_experiment(config, run.info.experiment_id)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("note: mlflow run recorded this run in the experiment 'Default'")
    assert "--experiment-name logistic-regression" in line


def test_no_note_for_a_run_in_the_kit_experiment_or_outside_mlflow_run(config, monkeypatch, capsys):
    console.warn_other_experiment(config, runs.DEFAULT_EXPERIMENT_ID)  # no MLFLOW_RUN_ID
    kit = MlflowClient().create_experiment("logistic-regression")
    monkeypatch.setenv("MLFLOW_RUN_ID", "0" * 32)
    console.warn_other_experiment(config, kit)
    assert capsys.readouterr().err == ""
