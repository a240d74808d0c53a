"""`inspect`: a run as a tree and an experiment as a table, read through MLflow's client.

The run is recorded directly in a real store (no training): what is shown is what was
recorded, whatever produced it. The tree of an S3-backed run: tests/e2e/test_s3_runs.py.
"""

from __future__ import annotations

from conftest import recorded_run
from mlflow.tracking import MlflowClient

from logistic_regression.__main__ import main as cli
from logistic_regression.inspection import KEY_METRICS

ARTIFACTS = {
    "report.html": "<html>" + "x" * 1500 + "</html>",
    "predictions.csv": "row,label,prediction,probability\n1,0,0,0.1\n",
    "config.yaml": "model:\n  C: 0.5\n",
    "environment.txt": "# python 3.11\nmlflow==3.17.2\n",
    "model/MLmodel": "artifact_path: model\n",
}


def test_inspect_shows_a_run_and_an_experiment(capsys):
    run_id = recorded_run(
        "logistic-regression",
        "logreg-C0.5-l2",
        {"model.C": "0.5", "model.penalty": "l2"},
        {"cv_roc_auc_mean": 0.9912, "test_roc_auc": 0.987},
        texts=ARTIFACTS,
    )
    other = recorded_run("logistic-regression", "logreg-C2-l2", {"model.C": "2"}, status=None)

    assert cli(["inspect", run_id]) == 0
    tree = capsys.readouterr().out
    experiment_id = MlflowClient().get_run(run_id).info.experiment_id
    assert tree.startswith(
        f"run {run_id}  logreg-C0.5-l2  FINISHED  "
        f"(experiment 'logistic-regression', id {experiment_id})"
    )
    assert "├── params (2)\n│   ├── model.C = 0.5\n│   └── model.penalty = l2\n" in tree
    assert "│   ├── cv_roc_auc_mean = 0.9912\n│   └── test_roc_auc = 0.987\n" in tree
    assert "    ├── model/\n    │   └── MLmodel  (21 B)\n" in tree
    assert "── report.html  (1.5 kB)" in tree
    for name in ("predictions.csv", "config.yaml", "environment.txt"):
        assert f"── {name}  (" in tree
    assert other not in tree

    assert cli(["inspect", "--experiment", "logistic-regression"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == f"experiment 'logistic-regression' (id {experiment_id}): 2 runs"
    assert table[1].split() == ["run_id", "name", "status", *KEY_METRICS]
    rows = {line.split()[0]: line.split()[1:] for line in table[2:]}
    assert rows == {
        other: ["logreg-C2-l2", "RUNNING", "-", "-", "-", "-"],
        run_id: ["logreg-C0.5-l2", "FINISHED", "0.9912", "-", "0.9870", "-"],
    }
    assert table[2].startswith(other), "newest first"

    assert cli(["inspect", "--experiment", "nope"]) == 2
    assert "no experiment named 'nope'" in capsys.readouterr().err


def test_output_piped_into_a_reader_that_stops_early_ends_quietly(monkeypatch, capsys):
    """`inspect RUN | head`: the reader closes the pipe; no "bug" line, exit 141."""
    import contextlib
    import os
    import sys

    run_id = recorded_run("logistic-regression", "logreg-C1-l2", {"model.C": "1"}, texts=ARTIFACTS)
    read_end, write_end = os.pipe()
    os.close(read_end)  # `head` has read its lines and gone
    closed = os.fdopen(write_end, "w")  # buffered, as a pipe is: the flush meets it
    monkeypatch.setattr(sys, "stdout", closed)
    try:
        assert cli(["inspect", run_id]) == 141
    finally:
        monkeypatch.undo()
        with contextlib.suppress(OSError):  # the command pointed the pipe at /dev/null
            closed.close()
    assert capsys.readouterr().err == ""


def test_an_experiment_of_more_runs_than_one_search_returns_is_listed_whole(monkeypatch, capsys):
    """MLflow returns at most a page of runs per search (1,000 by default, which the
    table once took for all): here the store's page is made 3 runs long, and the table
    pages through all 7, its count the real one."""
    real = MlflowClient.search_runs

    def small_pages(self, *args, max_results=1000, **kwargs):
        return real(self, *args, max_results=min(max_results, 3), **kwargs)

    monkeypatch.setattr(MlflowClient, "search_runs", small_pages)
    made = {recorded_run("paged", f"run-{i}", {}, {"cv_roc_auc_mean": 0.9}) for i in range(7)}
    assert cli(["inspect", "--experiment", "paged"]) == 0
    out = capsys.readouterr().out
    assert ": 7 runs" in out.splitlines()[0]
    assert {line.split()[0] for line in out.splitlines()[2:]} == made


def test_inspecting_an_s3_run_without_credentials_is_one_line(monkeypatch, capsys):
    """`unexpected NoCredentialsError ... (a bug in the kit)` before; now what is missing,
    and that without an endpoint boto3 would ask AWS's public one."""
    from mlflow.tracking import MlflowClient

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE",
                 "AWS_SESSION_TOKEN", "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask a cloud's metadata
    import boto3

    # boto3's default session keeps the credentials an earlier test resolved; with them
    # the request would leave for AWS. A fresh session finds none and asks nobody.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    client = MlflowClient()
    experiment = client.create_experiment("on-s3", artifact_location="s3://team/mlflow")
    run_id = client.create_run(experiment).info.run_id
    capsys.readouterr()
    assert cli(["inspect", run_id]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected" not in err, err
    assert "no S3 credentials found" in err and "AWS's public endpoint" in err
