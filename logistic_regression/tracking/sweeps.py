"""A sweep's runs in MLflow: the parent, its children, and children that never started."""

from __future__ import annotations

from collections.abc import Mapping

from mlflow.tracking import MlflowClient

from logistic_regression.provenance import UI_TAGS
from logistic_regression.status import Status
from logistic_regression.tracking.runs import ERROR_TAG, PARENT_TAG, clip, log_params


def start_parent(experiment: str, run_name: str, tags: Mapping[str, str]) -> str:
    """A sweep's parent run (not the fluent active run: children are started under it)."""
    run = MlflowClient().create_run(experiment, run_name=run_name, tags=dict(tags))
    return run.info.run_id


def record_failed_child(parent: str, run_name: str, reason: str, params: Mapping[str, str]) -> str:
    """A configuration refused before its run existed still shows up, FAILED, with why."""
    client = MlflowClient()
    parent_run = client.get_run(parent)
    shown = {k: v for k, v in parent_run.data.tags.items() if k in UI_TAGS}  # "Created by", ...
    run = client.create_run(
        parent_run.info.experiment_id,
        run_name=run_name,
        tags={**shown, PARENT_TAG: parent, ERROR_TAG: clip(reason)},
    )
    log_params(run.info.run_id, params)
    client.set_terminated(run.info.run_id, Status.FAILED)
    return run.info.run_id


def child_runs(parent: str) -> list:
    client = MlflowClient()
    experiment = client.get_run(parent).info.experiment_id
    return client.search_runs(
        [experiment], filter_string=f"tags.`{PARENT_TAG}` = '{parent}'", max_results=50000
    )
