"""MLflow edge: params flattening, secrets, and run status whatever happens (real SQLite store)."""

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from logistic_regression.errors import DataError
from logistic_regression.tracking import datasets, runs


def test_flatten_nested_config():
    assert runs.flatten({"model": {"C": 0.5, "opt": {"a": 1}}, "seed": 3}) == {
        "model.C": "0.5",
        "model.opt.a": "1",
        "seed": "3",
    }


def test_long_values_are_cut_to_mlflow_limit_and_accepted(config):
    long = "x" * 10_000
    flat = runs.flatten({"data": {"input": long}})
    assert len(flat["data.input"]) == runs.MAX_VALUE_LENGTH
    assert flat["data.input"].endswith(runs.TRUNCATION_MARK)
    mlflow.set_experiment("long-values")  # never rely on an experiment another test chose
    with mlflow.start_run() as run:
        runs.log_params(run.info.run_id, flat)
    assert len(MlflowClient().get_run(run.info.run_id).data.params["data.input"]) == 6000


def test_passwords_in_uris_never_reach_params():
    flat = runs.flatten({"tracking": {"uri": "postgresql://alice:hunter2@127.0.0.1/mlflow"}})
    assert flat == {"tracking.uri": "postgresql://***@127.0.0.1/mlflow"}  # user-info whole
    assert "hunter2" not in str(flat)


def test_run_ends_finished(config):
    with runs.active_run(config.tracking, "ok-run", {"mlflow.note.content": "n"}) as run:
        run_id = run.info.run_id
    info = MlflowClient().get_run(run_id)
    assert info.info.status == "FINISHED"
    assert info.info.run_name == "ok-run"
    assert info.data.tags["mlflow.note.content"] == "n"


def test_error_inside_run_marks_it_failed_with_reason(config):
    with pytest.raises(DataError):
        with runs.active_run(config.tracking, "bad-run", {}) as run:
            run_id = run.info.run_id
            raise DataError("the input vanished")
    failed = MlflowClient().get_run(run_id)
    assert failed.info.status == "FAILED"
    assert failed.data.tags[runs.ERROR_TAG] == "DataError: the input vanished"
    assert mlflow.active_run() is None


def test_interrupt_marks_the_run_killed(config):
    with pytest.raises(KeyboardInterrupt):
        with runs.active_run(config.tracking, "stopped", {}) as run:
            run_id = run.info.run_id
            raise KeyboardInterrupt
    assert MlflowClient().get_run(run_id).info.status == "KILLED"


def test_continues_the_run_mlflow_run_created(config, monkeypatch):
    client = MlflowClient()
    experiment = client.create_experiment("from-mlflow-run")
    created = client.create_run(experiment, tags={"mlflow.source.name": "git://127.0.0.1/kit.git"})
    monkeypatch.setenv("MLFLOW_RUN_ID", created.info.run_id)
    tags = {"mlflow.source.name": "file:///elsewhere", "mlflow.source.git.dirty": "false"}
    with runs.active_run(config.tracking, "named-by-kit", tags) as run:
        assert run.info.run_id == created.info.run_id
    finished = client.get_run(created.info.run_id)
    assert finished.info.status == "FINISHED" and finished.info.run_name == "named-by-kit"
    assert finished.data.tags["mlflow.source.name"] == "git://127.0.0.1/kit.git"
    assert finished.data.tags["mlflow.source.git.dirty"] == "false"


def test_the_logged_dataset_has_the_whole_frames_schema_profile_and_digest():
    """The schema comes from a sample (MLflow's full inference visits every cell), and
    must be the one MLflow infers from the whole frame."""
    import json

    import mlflow
    import numpy as np
    import pandas as pd

    rows = datasets.SCHEMA_SAMPLE_ROWS * 3
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "size": rng.normal(size=rows),
            "count": rng.integers(0, 9, size=rows),
            "flag": rng.integers(0, 2, size=rows).astype(bool),
            "colour": rng.choice(["red", "green"], size=rows),
            "target": rng.integers(0, 2, size=rows),
        }
    )
    mlflow.set_experiment("datasets")
    with mlflow.start_run() as run:
        datasets.log_dataset(frame, "/data/table.csv", "table.csv", "target", "d" * 64)
    (logged,) = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    whole = mlflow.data.from_pandas(frame, source="/data/table.csv", targets="target")
    assert json.loads(logged.dataset.schema) == {"mlflow_colspec": whole.schema.to_dict()}
    assert json.loads(logged.dataset.profile)["num_rows"] == rows
    assert logged.dataset.digest == "d" * 36


def test_a_per_fold_series_is_compared_fold_by_fold(config):
    """Reproduce compares what metrics_with_steps returns: each fold of cv_<m> on its own
    (the run's latest value alone would hide a change in an earlier fold)."""
    mlflow.set_experiment("steps")
    with mlflow.start_run() as run:
        for step, value in enumerate([0.91, 0.92, 0.93], start=1):
            mlflow.log_metric("cv_roc_auc", value, step=step)
        mlflow.log_metrics({"cv_roc_auc_mean": 0.92, "test_roc_auc": 0.95})
    assert runs.metrics_with_steps(MlflowClient().get_run(run.info.run_id)) == {
        "cv_roc_auc[1]": 0.91,
        "cv_roc_auc[2]": 0.92,
        "cv_roc_auc[3]": 0.93,
        "cv_roc_auc_mean": 0.92,
        "test_roc_auc": 0.95,
    }


@pytest.mark.parametrize(
    "error, reason",
    [
        (
            "API request to http://127.0.0.1:5000/api/2.0/mlflow/runs/log-batch failed with "
            "exception HTTPConnectionPool(host='127.0.0.1', port=5000): Max retries exceeded "
            "(Caused by ResponseError('too many 503 error responses'))",
            "it answered HTTP 503 (the server runs; its database may not)",
        ),
        (
            "API request to http://127.0.0.1:5000/api/2.0/mlflow/runs/log-batch failed with "
            "exception HTTPConnectionPool(host='127.0.0.1', port=5000): Max retries exceeded "
            "(Caused by NewConnectionError(': Failed to establish a new connection: [Errno "
            "111] Connection refused'))",
            "connection refused (the server is down)",
        ),
        ("Run 'abc' not found", ""),  # a refused request, not a failed store
    ],
    ids=["5xx", "refused", "not-a-store-failure"],
)
def test_a_failed_tracking_store_is_told_from_other_errors(error, reason):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, RESOURCE_DOES_NOT_EXIST

    code = RESOURCE_DOES_NOT_EXIST if not reason else INTERNAL_ERROR
    assert runs.store_failure(MlflowException(error, error_code=code)) == reason
    assert runs.store_failure(ValueError(error)) == ""


def test_a_store_that_failed_mid_run_is_one_line_saying_what_to_do():
    failed = runs.StoreFailed("r1", "http://127.0.0.1:5000", "connection refused", ended=False)
    failed = failed.keeping("/spool/r1")
    text = str(failed)
    assert "\n" not in text
    assert text.startswith("the tracking store http://127.0.0.1:5000 failed during run r1: ")
    assert "could not be ended there either" in text and "kept in /spool/r1" in text
    assert text.endswith("run `python -m logistic_regression sync` when the store is back")


@pytest.mark.parametrize(("message", "calls"), [
    # what a tracking server on PostgreSQL answered when two runs logged one table at once
    ('(psycopg.errors.UniqueViolation) duplicate key value violates unique constraint '
     '"dataset_pk"', 2),
    ("something else went wrong", 1),
])  # fmt: skip
def test_a_dataset_logged_by_two_runs_at_once_is_retried_and_nothing_else(
    monkeypatch, message, calls
):
    """MLflow's store checks for the dataset, then inserts it: two runs at the same moment
    both insert, and the second breaks the key. Retried, it finds the first one's."""
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    real, seen = mlflow.log_input, []

    def raced(*args, **kwargs):
        seen.append(args)
        if len(seen) == 1:
            raise MlflowException(message)
        return real(*args, **kwargs)

    monkeypatch.setattr(mlflow, "log_input", raced)
    frame = pd.DataFrame({"x": [1.0, 2.0], "target": [0, 1]})
    mlflow.set_experiment("datasets")
    with mlflow.start_run() as run:
        if calls == 1:
            with pytest.raises(MlflowException, match="something else"):
                datasets.log_dataset(frame, "/data/t.csv", "t.csv", "target", "d" * 64)
        else:
            datasets.log_dataset(frame, "/data/t.csv", "t.csv", "target", "d" * 64)
    assert len(seen) == calls
    logged = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert len(logged) == (1 if calls == 2 else 0)
