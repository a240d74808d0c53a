"""Runs `mlflow run` opened and never handed to the kit: settled by `sync`.

`mlflow run` creates its run before it builds the environment and starts the kit; a
stop sent to it then (SIGTERM to its pid) ends it at once, with the run RUNNING and no
process of the kit that knows of it (`launcher`). Such a run is RUNNING, started by
`mlflow run` (`mlflow.source.type` PROJECT) and has no `kit.version` tag (the kit sets
it with the first tags of every run it takes over). `sync` ends these KILLED, with the
reason in `kit.error`, on a store in this machine's files while no `mlflow run` process
for that store runs on this machine (one that does may still be building its
environment). A tracking server's runs may belong to an `mlflow run` on another
machine: they are only counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from logistic_regression import launcher
from logistic_regression.provenance import KIT_VERSION
from logistic_regression.status import Status
from logistic_regression.tracking.runs import fail_run
from logistic_regression.uris import store_uri

REASON = "mlflow run was stopped before it started the kit (settled by sync)"
FILTER = "attributes.status = 'RUNNING' and tags.`mlflow.source.type` = 'PROJECT'"


@dataclass(frozen=True)
class Unlaunched:
    """What `sync` did with such runs: `settled` ended KILLED, `left` left RUNNING
    (`why` says why)."""

    settled: tuple[str, ...] = ()
    left: tuple[str, ...] = ()
    why: str = ""


def unlaunched_runs(client: MlflowClient) -> list[str]:
    """The ids of the store's runs `mlflow run` opened and never handed over."""
    ids: list[str] = []
    token: str | None = None
    while True:
        experiments = client.search_experiments(ViewType.ACTIVE_ONLY, page_token=token)
        for experiment in experiments:
            ids += _unlaunched_in(client, experiment.experiment_id)
        token = experiments.token
        if not token:
            return ids


def _unlaunched_in(client: MlflowClient, experiment_id: str) -> list[str]:
    ids: list[str] = []
    token: str | None = None
    while True:
        page = client.search_runs([experiment_id], FILTER, max_results=1000, page_token=token)
        ids += [r.info.run_id for r in page if KIT_VERSION not in r.data.tags]
        token = page.token
        if not token:
            return ids


def settle(uri: str, local: bool) -> Unlaunched:
    """End KILLED the runs `mlflow run` left behind in store `uri` (module docstring)."""
    client = MlflowClient(uri)
    own = os.environ.get("MLFLOW_RUN_ID")  # `mlflow run -e sync`: its own run is not one
    found = [run_id for run_id in unlaunched_runs(client) if run_id != own]
    if not found:
        return Unlaunched()
    if not local:
        return Unlaunched(left=tuple(found), why="they may be starting on another machine")
    running = [
        pid for pid in launcher.running_launchers(store_uri(uri)) if pid != launcher.launcher()
    ]
    if running:
        pids = ", ".join(map(str, running))
        return Unlaunched(left=tuple(found), why=f"mlflow run is running here (pid {pids})")
    for run_id in found:
        fail_run(run_id, REASON, Status.KILLED, client)
    return Unlaunched(settled=tuple(found))
