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
