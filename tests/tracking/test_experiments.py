"""Many clients creating one experiment at once: each gets it, none fails its run.

The race is made, not hoped for: the lookup of the first caller answers "missing" after
another client has created the experiment in the real store, as when two clients of a
team server both looked before either created it.
"""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import fake_checkout
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from logistic_regression.importer import import_file
from logistic_regression.tracking import runs
from logistic_regression.tracking.default_experiment import KitExperimentProvider
from logistic_regression.tracking.experiments import get_or_create_experiment


@pytest.fixture
def created_by_another_client_meanwhile(monkeypatch):
    """The next lookup by name answers 'missing' just after another client created it;
    returns the names created that way."""
    lookup = MlflowClient.get_experiment_by_name
    raced: list[str] = []

    def late_lookup(self, name):
        if not raced:
            raced.append(name)
            MlflowClient().create_experiment(name)
            return None
        return lookup(self, name)

    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", late_lookup)
    return raced


def only_experiment_called(name: str) -> str:
    (found,) = [e for e in MlflowClient().search_experiments() if e.name == name]
    return found.experiment_id


def test_the_loser_of_the_race_gets_the_experiment_the_winner_created(
    created_by_another_client_meanwhile,
):
    experiment = get_or_create_experiment(MlflowClient(), "team-load")
    assert created_by_another_client_meanwhile == ["team-load"], "the race did not happen"
    assert experiment.experiment_id == only_experiment_called("team-load")


def test_a_new_experiment_is_created_where_asked(tmp_path):
    experiment = get_or_create_experiment(MlflowClient(), "new", (tmp_path / "art").as_uri())
    assert experiment.artifact_location == (tmp_path / "art").as_uri()
    assert get_or_create_experiment(MlflowClient(), "new").experiment_id == experiment.experiment_id


def test_other_refusals_of_the_store_still_fail():
    with pytest.raises(MlflowException) as refused:
        get_or_create_experiment(MlflowClient(), "")
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"


def import_a_sheet(tmp_path, name):
    sheet = tmp_path / "past.csv"
    pd.DataFrame([["C", "accuracy"], ["parameter", "metric"], ["0.1", "0.9"]]).to_csv(
        sheet, header=False, index=False
    )
    assert import_file(sheet, name) == (1, 0)


def provider_in_a_checkout(tmp_path, name, monkeypatch):
    monkeypatch.chdir(fake_checkout(tmp_path / "kit"))
    assert name == "logistic-regression"  # the experiment conf/ names
    return KitExperimentProvider().get_experiment_id()


@pytest.mark.parametrize(
    "start",
    [
        pytest.param(lambda tmp_path, name, _: runs.experiment_id(name, None), id="train"),
        pytest.param(lambda tmp_path, name, _: import_a_sheet(tmp_path, name), id="import"),
        pytest.param(provider_in_a_checkout, id="mlflow-run"),
    ],
)
def test_every_way_in_survives_the_race(
    start, created_by_another_client_meanwhile, tmp_path, monkeypatch
):
    start(tmp_path, "logistic-regression", monkeypatch)
    assert created_by_another_client_meanwhile == ["logistic-regression"]
    only_experiment_called("logistic-regression")


def deleted(name: str) -> str:
    client = MlflowClient()
    experiment_id = client.create_experiment(name)
    client.delete_experiment(experiment_id)
    return experiment_id


def test_a_deleted_experiment_is_one_line_saying_how_to_restore_it_and_no_run(capsys):
    from mlflow.entities import ViewType

    from logistic_regression.__main__ import main as kit

    gone = deleted("gone")
    assert kit(["train", "tracking.experiment_name=gone"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "unexpected" not in err, err
    assert f"experiment 'gone' (id {gone}) is deleted" in err
    assert f"mlflow experiments restore --experiment-id {gone}" in err
    every = MlflowClient().search_experiments(view_type=ViewType.ALL)
    assert MlflowClient().search_runs([e.experiment_id for e in every], run_view_type=3) == []


def test_mlflow_run_into_a_deleted_kit_experiment_is_warned_and_lands_in_default(
    tmp_path, monkeypatch, capfd
):
    import mlflow.tracking.fluent

    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    monkeypatch.chdir(fake_checkout(tmp_path / "kit"))
    deleted("logistic-regression")
    with mlflow.start_run() as run:  # what `mlflow run .` does: MLflow asks the provider
        landed = run.info.experiment_id
    assert MlflowClient().get_experiment(landed).name == "Default"
    warned = capfd.readouterr().err  # MLflow's own logger, not propagated to pytest's
    assert "experiment 'logistic-regression'" in warned and "is deleted" in warned, warned


@pytest.mark.parametrize(
    "command",
    [["inspect", "--experiment", "gone"], ["best", "--experiment", "gone"]],
    ids=["inspect", "best"],
)
def test_listing_a_deleted_experiment_says_it_is_deleted_not_empty(command, capsys):
    from logistic_regression.__main__ import main as kit

    gone = deleted("gone")
    assert kit(command) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: experiment 'gone' (id {gone}) is deleted; restore it"), err


def test_an_experiment_the_kit_creates_opens_on_model_training_in_the_ui(isolated_mlflow):
    """Without `mlflow.experimentKind` the MLflow UI opens the experiment on its GenAI
    overview with a "Detect Issues" pop-up."""
    from logistic_regression import train

    assert train.main(["tracking.experiment_name=kinds"]) == 0
    experiment = MlflowClient().get_experiment_by_name("kinds")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
