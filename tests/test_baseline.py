"""Baselines: one run per experiment is the baseline; later runs log and report how
they compare with it."""

from __future__ import annotations

import dataclasses

import mlflow
import pytest
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


def test_later_runs_log_and_report_their_ratio_and_difference_to_the_baseline(config, capsys):
    client = MlflowClient()
    first = run_with(config, 0.01)
    assert "vs_baseline_test_roc_auc_ratio" not in client.get_run(first).data.metrics

    assert cli(["baseline", first]) == 0
    assert "is now the baseline of experiment 'baselines'" in capsys.readouterr().out
    later = run_with(config, 1.0)
    base, new = client.get_run(first).data.metrics, client.get_run(later).data.metrics
    for name in ("cv_roc_auc_mean", "test_accuracy", "test_log_loss"):
        assert new[f"vs_baseline_{name}_diff"] == new[name] - base[name]
        assert new[f"vs_baseline_{name}_ratio"] == new[name] / base[name]
    assert client.get_run(later).data.tags["kit.baseline_run_id"] == first
    report = mlflow.artifacts.load_text(f"{client.get_run(later).info.artifact_uri}/report.html")
    assert "Compared with the baseline" in report and first in report

    mark_baseline(later)  # the tag moves: one baseline per experiment
    assert "kit.baseline" not in client.get_run(first).data.tags
    assert client.get_run(later).data.tags["kit.baseline"] == "true"
    third = run_with(config, 0.5)
    assert client.get_run(third).data.tags["kit.baseline_run_id"] == later


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
