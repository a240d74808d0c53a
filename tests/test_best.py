"""`best`: the top runs by a metric, through MLflow's search with filter and order."""

from __future__ import annotations

import dataclasses

import pytest

from logistic_regression import pipeline
from logistic_regression.__main__ import main as cli
from logistic_regression.errors import KitError
from logistic_regression.inspection import best_runs


@pytest.fixture
def store(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'best.db'}"


def make_runs(config, uri, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    runs = {}
    for C, penalty, solver in [
        (0.001, "l2", "lbfgs"),
        (1.0, "l2", "lbfgs"),
        (0.5, "l1", "liblinear"),
    ]:
        cfg = dataclasses.replace(
            config,
            model=dataclasses.replace(config.model, C=C, penalty=penalty, solver=solver),
            tracking=dataclasses.replace(config.tracking, experiment_name="best"),
        )
        runs[(C, penalty)] = pipeline.run(cfg)
    return runs


def test_best_orders_filters_and_limits(config, store, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    uri = store
    runs = make_runs(config, uri, monkeypatch)
    client = MlflowClient(uri)
    value = {k: client.get_run(s.run_id).data.metrics for k, s in runs.items()}

    ranked = sorted(runs, key=lambda k: -value[k]["cv_roc_auc_mean"])
    shown = best_runs("cv_roc_auc_mean", "best", top=2, client=client).splitlines()
    assert shown[0].startswith("best 2 runs of 'best' by cv_roc_auc_mean (highest first)")
    assert runs[ranked[0]].run_id in shown[2] and runs[ranked[1]].run_id in shown[3]
    assert len(shown) == 4

    lowest = sorted(runs, key=lambda k: value[k]["test_log_loss"])
    shown = best_runs("test_log_loss", "best", top=3, client=client).splitlines()
    assert "(lowest first)" in shown[0]
    assert [runs[k].run_id in line for k, line in zip(lowest, shown[2:], strict=True)] == [True] * 3

    only_l1 = best_runs("cv_roc_auc_mean", "best", "params.`model.penalty` = 'l1'", 5, client)
    assert runs[(0.5, "l1")].run_id in only_l1 and runs[(1.0, "l2")].run_id not in only_l1

    assert (
        cli(
            [
                "best",
                "--metric",
                "cv_f1_mean",
                "--experiment",
                "best",
                "--top",
                "1",
                "--tracking-uri",
                uri,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    best_f1 = max(runs, key=lambda k: value[k]["cv_f1_mean"])
    assert runs[best_f1].run_id in out


def test_bad_filters_and_names_are_one_line(store, capsys):
    from mlflow.tracking import MlflowClient

    uri = store
    client = MlflowClient(uri)
    client.create_experiment("empty")
    with pytest.raises(KitError, match="--filter=.*was refused"):
        best_runs("cv_roc_auc_mean", "empty", "params.x = = 'y'", 5, client)
    with pytest.raises(KitError, match="no experiment named 'nope'"):
        best_runs("cv_roc_auc_mean", "nope", "", 5, client)
    assert "none match" in best_runs("cv_roc_auc_mean", "empty", "", 5, client)
    code = cli(["best", "--experiment", "nope", "--tracking-uri", uri])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and errors == [
        "error: no experiment named 'nope'; experiments here: 'empty', 'Default'"
    ]
    assert "Traceback" not in err
