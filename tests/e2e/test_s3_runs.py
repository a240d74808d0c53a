"""Runs whose artifacts, model and outputs live in a real S3 server (SeaweedFS), in
process: what lands where, and the stores refused before a run. The failure stories
(hung store, outage, killed process) run the training in its own process:
tests/e2e/test_s3_failures.py.
"""

from __future__ import annotations

import mlflow
import pytest
from conftest import returns_within
from mlflow.tracking import MlflowClient
from servers import s3_bytes
from sklearn.datasets import load_breast_cancer

from logistic_regression import inspection, train

S3_RUN = ["storage=s3", "storage.bucket=kit", "tracking.experiment_name=s3-runs"]


@pytest.fixture
def cancer_in_s3(s3_env):
    body = load_breast_cancer(as_frame=True).frame.to_csv(index=False).encode()
    s3_env.client().put_object(Bucket="kit", Key="data/cancer.csv", Body=body)
    return "s3://kit/data/cancer.csv"


def only_run(experiment: str):
    experiment_id = MlflowClient().get_experiment_by_name(experiment).experiment_id
    (run,) = MlflowClient().search_runs([experiment_id])
    return run


def test_everything_a_run_writes_lands_in_s3(s3_env, cancer_in_s3, tmp_path, capsys):
    code = train.main([*S3_RUN, f"data.input={cancer_in_s3}", "data.output=s3://kit/exports/"])
    assert code == 0, capsys.readouterr().err
    run = only_run("s3-runs")
    client = MlflowClient()
    root = run.info.artifact_uri
    assert root.startswith("s3://kit/mlflow/s3-runs/")
    assert run.info.status == "FINISHED"
    assert run.data.tags["kit.artifacts"] == "complete"
    stored = {a.path: a.file_size for a in client.list_artifacts(run.info.run_id)}
    for name in ("report.html", "config.yaml", "environment.txt", "predictions.csv"):
        assert stored[name] == len(s3_bytes(s3_env, f"{root}/{name}")) > 0
    assert b"<html" in s3_bytes(s3_env, f"{root}/report.html")

    output = run.data.tags["kit.output_path"]
    assert output == f"s3://kit/exports/{run.info.run_id}/predictions.csv"
    assert s3_bytes(s3_env, output) == s3_bytes(s3_env, f"{root}/predictions.csv")
    assert run.data.params["input_path"] == cancer_in_s3 and run.data.params["input_etag"]

    (model,) = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert str(model.status) == "READY"
    assert model.artifact_location.startswith("s3://kit/mlflow/s3-runs/")
    assert s3_bytes(s3_env, f"{model.artifact_location}/MLmodel").startswith(b"artifact_path")
    loaded = mlflow.pyfunc.load_model(f"models:/{model.model_id}")
    features = load_breast_cancer(as_frame=True).data.head(3)
    assert list(loaded.predict(features)) == [0, 0, 0]

    tree = inspection.run_tree(run.info.run_id)
    assert "report.html" in tree and "kB" in tree
    secrets = (s3_env.secret_key,)
    logged = (
        str(run.data.params) + str(run.data.tags) + s3_bytes(s3_env, f"{root}/report.html").decode()
    )
    assert not any(secret in logged for secret in secrets)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["storage.bucket=no-such-bucket"], "s3://no-such-bucket: the bucket does not exist"),
        (["data.output=s3://missing-out/p/"], "s3://missing-out: the bucket does not exist"),
        (["storage.bucket=s3://kit"], "storage.bucket='s3://kit' is not allowed"),
    ],
)
def test_bad_stores_are_refused_before_any_run(s3_env, overrides, expected, capsys):
    assert train.main([*S3_RUN, *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1
    assert MlflowClient().get_experiment_by_name("s3-runs") is None


def test_wrong_credentials_are_refused_without_echoing_them(s3_env, monkeypatch, capsys):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-key")
    assert train.main(S3_RUN) == 2
    err = capsys.readouterr().err.strip()
    assert "access denied" in err and len(err.splitlines()) == 1
    assert "not-the-secret-key" not in err and s3_env.secret_key not in err
    assert MlflowClient().get_experiment_by_name("s3-runs") is None


def test_an_experiment_stored_locally_is_not_silently_used_for_s3(s3_env, capsys):
    MlflowClient().create_experiment("s3-runs")
    assert train.main(S3_RUN) == 2
    err = capsys.readouterr().err
    assert "stores artifacts at" in err and "not under s3://kit/mlflow/s3-runs" in err
    assert not MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("s3-runs").experiment_id]
    )


@pytest.mark.parametrize(
    "overrides",
    [S3_RUN, ["data.input=s3://kit/data/cancer.csv", "data.target=target"]],
    ids=["bucket", "input"],
)
def test_a_hung_s3_endpoint_is_one_line_within_the_configured_wait(private_s3, overrides, capsys):
    """An endpoint that accepts connections and never answers (SeaweedFS frozen with
    SIGSTOP) took boto3's retries, minutes, before the line: now the pre-run checks give
    up after tracking.timeout_s. (60 s only turns a hang into a failure.)"""
    body = load_breast_cancer(as_frame=True).frame.to_csv(index=False).encode()
    private_s3.client().put_object(Bucket="kit", Key="data/cancer.csv", Body=body)
    private_s3.freeze()
    try:
        code = returns_within(60, train.main, [*overrides, "tracking.timeout_s=2"])
    finally:
        private_s3.thaw()
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "timeout" in err.lower() or "timed out" in err.lower(), err
    assert (
        MlflowClient().search_runs([e.experiment_id for e in MlflowClient().search_experiments()])
        == []
    )
