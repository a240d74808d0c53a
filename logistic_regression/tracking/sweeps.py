"""A sweep's runs in MLflow: the parent, its children, and children that never started;
for a resumed sweep (`sweep_resume.py`), its parent re-opened and its marks moved."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from logistic_regression.provenance import UI_TAGS
from logistic_regression.status import Status
from logistic_regression.tracking.runs import ERROR_TAG, PARENT_TAG, clip, log_params, log_tags

# On a sweep's parent: running, finished or aborted (what makes a run a sweep's parent).
SWEEP_TAG = "kit.sweep"
# On the best configuration's run: found by `tags.kit.sweep_best = 'true'`.
BEST_TAG = "kit.sweep_best"


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


# MLflow's answers for a run id the store does not hold (a malformed id is refused as
# an invalid value by some stores).
_NO_SUCH_RUN = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def find_run(run_id: str) -> Run | None:
    """The run, or None when this store holds no run with that id."""
    try:
        return MlflowClient().get_run(run_id)
    except MlflowException as exc:
        if exc.error_code in _NO_SUCH_RUN:
            return None
        raise


def experiment_name(experiment_id: str) -> str:
    return MlflowClient().get_experiment(experiment_id).name


def experiment_named(name: str) -> str | None:
    found = MlflowClient().get_experiment_by_name(name)
    return found.experiment_id if found else None


def reopen(run_id: str, tags: Mapping[str, str], drop: Iterable[str]) -> None:
    """An ended run RUNNING again, with `tags` set and the tags `drop` names removed."""
    client = MlflowClient()
    client.update_run(run_id, status=Status.RUNNING)
    present = client.get_run(run_id).data.tags
    for name in drop:
        if name in present:
            client.delete_tag(run_id, name)
    log_tags(run_id, tags)


def mark_best(parent: str, best: str) -> None:
    """`best` marked the sweep's best child; a mark an earlier attempt of the sweep left
    on another child is removed (one best per sweep)."""
    client = MlflowClient()
    for child in child_runs(parent):
        if child.info.run_id != best and BEST_TAG in child.data.tags:
            client.delete_tag(child.info.run_id, BEST_TAG)
    client.set_tag(best, BEST_TAG, "true")


def tag_runs(tags: Mapping[str, Mapping[str, str]]) -> None:
    """Tags set on several runs: run id -> tags."""
    for run_id, values in tags.items():
        log_tags(run_id, values)
