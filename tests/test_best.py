"""`best`: the top runs by a metric, through MLflow's search with filter and order.

The runs are recorded directly in a real store with chosen metrics (no training): the
test is about ranking, filtering and limiting, so each metric orders them differently.
"""

from __future__ import annotations

import pytest
from conftest import new_store, recorded_run
from mlflow.tracking import MlflowClient

from logistic_regression.__main__ import main as cli
from logistic_regression.errors import KitError
from logistic_regression.inspection import best_runs

RUNS = {
    # name: (C, penalty, solver, cv_roc_auc_mean, test_log_loss, cv_f1_mean)
    "weak": (0.001, "l2", "lbfgs", 0.90, 0.30, 0.95),
    "strong": (1.0, "l2", "lbfgs", 0.99, 0.10, 0.90),
    "sparse": (0.5, "l1", "liblinear", 0.95, 0.05, 0.92),
}


@pytest.fixture
def store(tmp_path, migrated_store) -> str:
    """A second store, so `--tracking-uri` is what decides where `best` looks."""
    return new_store(migrated_store, tmp_path / "best.db")


@pytest.fixture
def runs(store) -> dict[str, str]:
    client = MlflowClient(store)
    ids = {
        name: recorded_run(
            "best",
            name,
            {"model.C": C, "model.penalty": penalty, "model.solver": solver},
            {"cv_roc_auc_mean": auc, "test_log_loss": loss, "cv_f1_mean": f1},
            client=client,
        )
        for name, (C, penalty, solver, auc, loss, f1) in RUNS.items()
    }
    # Never ranked: a run still RUNNING with the best values, and one without metrics.
    recorded_run(
        "best",
        "running",
        {"model.penalty": "l1"},
        {"cv_roc_auc_mean": 1.0, "test_log_loss": 0.0, "cv_f1_mean": 1.0},
        status=None,
        client=client,
    )
    recorded_run("best", "unscored", {"model.penalty": "l1"}, client=client)
    return ids


def test_best_orders_filters_and_limits(store, runs, capsys):
    client = MlflowClient(store)
    shown = best_runs("cv_roc_auc_mean", "best", top=2, client=client).splitlines()
    assert shown[0].startswith("best 2 runs of 'best' by cv_roc_auc_mean (highest first)")
    assert shown[1].split()[:4] == ["rank", "run_id", "name", "cv_roc_auc_mean"]
    assert shown[2].split()[:4] == ["1", runs["strong"], "strong", "0.990000"]
    assert shown[3].split()[:4] == ["2", runs["sparse"], "sparse", "0.950000"]
    assert len(shown) == 4

    shown = best_runs("test_log_loss", "best", top=5, client=client).splitlines()
    assert "best 3 runs" in shown[0] and "(lowest first)" in shown[0]
    assert [line.split()[1] for line in shown[2:]] == [
        runs["sparse"],
        runs["strong"],
        runs["weak"],
    ]

    only_l1 = best_runs("cv_roc_auc_mean", "best", "params.`model.penalty` = 'l1'", 5, client)
    assert [line.split()[1] for line in only_l1.splitlines()[2:]] == [runs["sparse"]]

    assert cli(["best", "--metric", "cv_f1_mean", "--experiment", "best", "--top", "1",
                "--tracking-uri", store]) == 0  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("best 1 runs of 'best' by cv_f1_mean")
    assert out[2].split()[:2] == ["1", runs["weak"]] and len(out) == 3


def test_reproductions_are_left_out_unless_asked(store, runs, capsys):
    client = MlflowClient(store)
    copy = recorded_run("best", "strong", {"model.C": 1.0}, {"cv_roc_auc_mean": 0.995},
                        client=client, tags={"kit.reproduction_of": runs["strong"]})  # fmt: skip
    older = recorded_run(
        "best",
        "strong",
        {"model.C": 1.0},
        {"cv_roc_auc_mean": 0.993},
        client=client,
        tags={"reproduces": runs["strong"]},
    )  # earlier kits
    shown = best_runs("cv_roc_auc_mean", "best", top=5, client=client)
    assert [line.split()[1] for line in shown.splitlines()[2:]] == [
        runs["strong"],
        runs["sparse"],
        runs["weak"],
    ]
    every = best_runs("cv_roc_auc_mean", "best", top=2, client=client, include_reproductions=True)
    assert [line.split()[1] for line in every.splitlines()[2:]] == [copy, older]

    assert cli(["best", "--experiment", "best", "--top", "1", "--include-reproductions",
                "--tracking-uri", store]) == 0  # fmt: skip
    assert capsys.readouterr().out.splitlines()[2].split()[1] == copy


def test_bad_filters_and_names_are_one_line(store, capsys):
    client = MlflowClient(store)
    client.create_experiment("empty")
    with pytest.raises(KitError, match="--filter=.*was refused"):
        best_runs("cv_roc_auc_mean", "empty", "params.x = = 'y'", 5, client)
    with pytest.raises(KitError, match="no experiment named 'nope'"):
        best_runs("cv_roc_auc_mean", "nope", "", 5, client)
    assert "none match" in best_runs("cv_roc_auc_mean", "empty", "", 5, client)
    code = cli(["best", "--experiment", "nope", "--tracking-uri", store])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and errors == [
        "error: no experiment named 'nope'; experiments here: 'empty', 'Default'"
    ]
    assert "Traceback" not in err


def test_a_metric_no_run_has_is_named_with_the_metrics_there(store):
    client = MlflowClient(store)
    recorded_run("typo", "a", metrics={"cv_roc_auc_mean": 0.9, "test_f1": 0.8}, client=client)
    recorded_run("typo", "b", metrics={"cv_f1_mean": 0.7}, status="FAILED", client=client)
    said = best_runs("cv_roc_auc_maen", "typo", "", 5, client)
    assert said.endswith(
        "none match; no run of it has a metric named 'cv_roc_auc_maen' "
        "(metrics there: cv_f1_mean, cv_roc_auc_mean, test_f1)"
    )
    # Present on a run, but none passes the filter: no such hint.
    filtered = best_runs("cv_f1_mean", "typo", "", 5, client)
    assert filtered.endswith("none match")


def test_l1_ratio_is_listed_only_where_the_penalty_uses_it(store):
    client = MlflowClient(store)
    common = {"model.C": 1.0, "model.solver": "saga", "model.l1_ratio": 0.3}
    mixed = recorded_run("best", "mixed", {**common, "model.penalty": "elasticnet"},
                         {"cv_roc_auc_mean": 0.9}, client=client)  # fmt: skip
    plain = recorded_run("best", "plain", {**common, "model.penalty": "l2"},
                         {"cv_roc_auc_mean": 0.8}, client=client)  # fmt: skip
    rows = {line.split()[1]: line.split() for line in
            best_runs("cv_roc_auc_mean", "best", client=client).splitlines()[2:]}  # fmt: skip
    assert rows[mixed][-3:] == ["elasticnet", "saga", "0.3"]
    assert rows[plain][-3:] == ["l2", "saga", "-"]
