"""The kit's run statuses are MLflow's, by name and value."""

from mlflow.entities import RunStatus

from logistic_regression.status import Status


def test_every_status_is_mlflows_own():
    assert [RunStatus.to_string(RunStatus.from_string(s)) for s in Status] == list(Status)
    assert set(Status) <= {RunStatus.to_string(s) for s in RunStatus.all_status()}
