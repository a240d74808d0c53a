"""Baselines: one run per experiment is the baseline; later runs log and report how
they compare with it."""

from __future__ import annotations

import dataclasses

import mlflow
import pytest
from conftest import recorded_run
from mlflow.tracking import MlflowClient

from logistic_regression import pipeline
from logistic_regression.__main__ import main as cli
from logistic_regression.errors import KitError
from logistic_regression.tracking.baselines import mark_baseline


def run_with(config, C: float) -> str:
    cfg = dataclasses.replace(
        config,
        model=dataclasses.replace(config.model, C=C),
        tracking=dataclasses.replace(config.tracking, experiment_name="baselines"),
    )
    return pipeline.run(cfg).run_id


def recorded(name: str, value: float) -> str:
    """A finished run in the experiment with chosen metrics (no training needed to be a
    baseline: only its metrics are compared)."""
    metrics = {
        "cv_roc_auc_mean": value,
        "test_roc_auc": value,
        "test_accuracy": value - 0.05,
        "test_f1": value - 0.04,
        "test_log_loss": 1.0 - value,
    }
    return recorded_run("baselines", name, {"model.C": "0.01"}, metrics)


def test_later_runs_log_and_report_their_ratio_and_difference_to_the_baseline(config, capsys):
    client = MlflowClient()
    first, second = recorded("first", 0.9), recorded("second", 0.8)
    assert cli(["baseline", first]) == 0
    assert "is now the baseline of experiment 'baselines'" in capsys.readouterr().out
    assert client.get_run(first).data.tags["kit.baseline"] == "true"

    mark_baseline(second)  # the tag moves: one baseline per experiment
    assert "kit.baseline" not in client.get_run(first).data.tags
    assert client.get_run(second).data.tags["kit.baseline"] == "true"

    later = run_with(config, 1.0)  # compared with the baseline now, not the first one
    base, new = client.get_run(second).data.metrics, client.get_run(later).data.metrics
    assert client.get_run(later).data.tags["kit.baseline_run_id"] == second
    for name in ("cv_roc_auc_mean", "test_roc_auc", "test_accuracy", "test_f1", "test_log_loss"):
        assert new[f"vs_baseline_{name}_diff"] == new[name] - base[name]
        assert new[f"vs_baseline_{name}_ratio"] == new[name] / base[name]
    report = mlflow.artifacts.load_text(f"{client.get_run(later).info.artifact_uri}/report.html")
    assert "Compared with the baseline" in report and second in report and first not in report


def test_a_reproduction_is_no_baseline_unless_asked(capsys):
    original = recorded("original", 0.9)
    copy = recorded_run(
        "baselines", "copy", {}, {"cv_roc_auc_mean": 0.9}, tags={"kit.reproduction_of": original}
    )
    with pytest.raises(KitError, match=f"is a reproduction of run {original}; mark that run"):
        mark_baseline(copy)
    assert cli(["baseline", copy]) == 2
    assert capsys.readouterr().err.startswith(f"error: run {copy} is a reproduction of run ")
    assert "kit.baseline" not in MlflowClient().get_run(copy).data.tags
    assert cli(["baseline", copy, "--allow-reproduction"]) == 0
    assert MlflowClient().get_run(copy).data.tags["kit.baseline"] == "true"


def test_unknown_or_unfinished_runs_cannot_be_baselines(capsys):
    with pytest.raises(KitError, match="no run with id 'nope'"):
        mark_baseline("nope")
    client = MlflowClient()
    running = client.create_run(client.create_experiment("unfinished")).info.run_id
    with pytest.raises(KitError, match="only a FINISHED run can be a baseline"):
        mark_baseline(running)
    assert cli(["baseline", "nope"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert errors == ["error: no run with id 'nope' in this tracking store"]


def test_a_deleted_run_is_refused_with_how_to_restore_it(capsys):
    gone = recorded("deleted", 0.9)
    MlflowClient().delete_run(gone)
    assert cli(["baseline", gone]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: run {gone} is deleted; restore it with `mlflow runs restore --run-id {gone}` "
        "against this tracking store, or mark another run\n"
    )


def test_a_run_on_other_data_is_not_compared_with_the_baseline_and_says_so(config, caplog):
    """A baseline trained on another table used to give every run vs_baseline_* metrics
    against it without a word."""
    client = MlflowClient()
    other = recorded_run(
        "baselines",
        "on-penguins",
        {"model.C": "0.01", "input_digest": "f" * 64, "input_path": "penguins.csv"},
        {"cv_roc_auc_mean": 0.7, "test_roc_auc": 0.7},
    )
    mark_baseline(other)
    later = run_with(config, 1.0)  # on breast_cancer
    run = client.get_run(later)
    assert not [name for name in run.data.metrics if name.startswith("vs_baseline_")]
    note = run.data.tags["kit.baseline_not_compared"]
    assert f"the baseline {other} (on-penguins) was trained on other data (penguins.csv)" in note
    assert note in caplog.text and note in run.data.tags["kit.warnings"]
    report = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/report.html")
    assert "Not compared: the baseline" in report
