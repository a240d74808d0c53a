"""Runs in MLflow: the tracking store, a run's honest lifecycle, params, metrics, tags.

A run is never left RUNNING: `active_run` ends it FINISHED, FAILED (with the reason in
the `kit.error` tag) or KILLED, whatever happens inside, and the calls it makes on the
way out are bounded (`bounded_store`), since the store may be what failed. When the
tracking store itself fails in the middle of the run (a server that stopped, or whose
database did: connection refused, 5xx answers once MLflow's HTTP retries are spent),
the run ends in `StoreFailed`: one line saying so, the run ended FAILED if the store
still takes that, else left for `sync` to end (the run's spool folder is kept). When
`mlflow run` started the run (it exports MLFLOW_RUN_ID), the kit continues that run
instead of opening another one.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, Run, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from logistic_regression import environment
from logistic_regression.config import TrackingConfig, flatten_tree
from logistic_regression.errors import Interrupted, StorageError, first_line
from logistic_regression.provenance import GIT_DIRTY
from logistic_regression.status import Status
from logistic_regression.tracking.experiments import get_or_create_experiment
from logistic_regression.uris import redact

ERROR_TAG = "kit.error"

WARNINGS_TAG = "kit.warnings"

PARENT_TAG = "mlflow.parentRunId"

# MLflow refuses param values longer than this (MAX_PARAM_VAL_LENGTH in MLflow 3.x); the
# kit clips every param and tag value it writes to it (tags allow more, none needs it).
MAX_VALUE_LENGTH = 6000

TRUNCATION_MARK = "...[truncated]"

# How long an error handler waits for a tracking server before giving up on it.
ERROR_PATH_TIMEOUT_S = 10.0


class StoreFailed(StorageError):
    """The tracking store failed in the middle of run `run_id`; `ended`: whether the run
    could still be ended FAILED there. `spool`: the folder that keeps its files (the
    run's owner knows it: `keeping`). The message is one line, ending with what to do."""

    def __init__(self, run_id: str, store: str, reason: str, ended: bool, spool: str = "") -> None:
        super().__init__(reason)
        self.run_id, self.store, self.reason, self.ended = run_id, store, reason, ended
        self.spool = spool

    def keeping(self, spool: str) -> StoreFailed:
        """The same failure, saying which folder keeps the run's files."""
        failed = StoreFailed(self.run_id, self.store, self.reason, self.ended, spool)
        return failed.with_traceback(self.__traceback__)

    def __str__(self) -> str:
        ended = (
            "the run is recorded FAILED"
            if self.ended
            else "the run could not be ended there either (it shows RUNNING until `sync`)"
        )
        kept = f"its files are kept in {self.spool}" if self.spool else "its spool folder is kept"
        return (
            f"the tracking store {self.store} failed during run {self.run_id}: {self.reason}; "
            f"{ended}; {kept}: run `python -m logistic_regression sync` when the store is back"
        )


# MLflow's error codes for a server that failed, not for a request it refused.
_SERVER_FAILURES = ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE")


def store_failure(exc: BaseException) -> str:
    """Why the tracking store failed, in a few words, when `exc` says it did (a server
    down, not answering, or answering 5xx); "" for any other error."""
    import requests

    text = str(exc)
    if isinstance(exc, MlflowException):
        if "API request to" not in text and exc.error_code not in _SERVER_FAILURES:
            return ""
    elif not isinstance(exc, requests.RequestException):
        return ""
    status = re.search(r"too many (\d{3}) error responses", text)
    if status:
        return f"it answered HTTP {status.group(1)} (the server runs; its database may not)"
    if "Connection refused" in text or "NewConnectionError" in text:
        return "connection refused (the server is down)"
    if "timed out" in text.lower() or "timeout" in text.lower():
        return "it did not answer in time"
    line = redact(first_line(exc))
    return line if len(line) <= 200 else line[:197] + "..."


def clip(text: str) -> str:
    """`text` cut to MLflow's value length, marked when cut."""
    if len(text) <= MAX_VALUE_LENGTH:
        return text
    return text[: MAX_VALUE_LENGTH - len(TRUNCATION_MARK)] + TRUNCATION_MARK


def use_tracking_uri(tracking: TrackingConfig) -> str:
    """`tracking.uri` (conf/ makes it MLFLOW_TRACKING_URI when that is set) as MLflow's
    store for this process."""
    mlflow.set_tracking_uri(tracking.uri)
    return tracking.uri


def use_uri(uri: str) -> None:
    mlflow.set_tracking_uri(uri)


# MLflow's "Default" experiment, where `mlflow run` puts a run no one placed elsewhere.
DEFAULT_EXPERIMENT_ID = "0"


def run_id_from_mlflow_run() -> str | None:
    """The run `mlflow run` created for this process, if it did."""
    return os.environ.get("MLFLOW_RUN_ID") or None


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"model": {"C": 0.5}}` -> `{"model.C": "0.5"}` as params: secrets redacted
    (`uris.redact`), values cut to MLflow's length limit."""
    flat: dict[str, str] = {}
    for name, value in flatten_tree(tree, prefix).items():
        flat[name] = clip(redact(str(value)))
    return flat


def config_params(resolved: dict) -> dict[str, str]:
    """The resolved config as `group.key` params; top-level values (seed) as `run.<key>`,
    since `mlflow run` already logs its own `seed` parameter (empty when defaulted)."""
    nested = {key: value for key, value in resolved.items() if isinstance(value, dict)}
    top = {key: value for key, value in resolved.items() if not isinstance(value, dict)}
    return {**flatten(nested), **flatten(top, "run.")}


def fail_run(
    run_id: str, reason: str, status: str = Status.FAILED, client: MlflowClient | None = None
) -> None:
    """Record why a run stopped and end it; used for runs this process did not open itself."""
    client = client or MlflowClient()
    client.set_tag(run_id, ERROR_TAG, clip(redact(reason)))
    client.set_terminated(run_id, status)


def experiment_id(name: str, artifact_location: str | None) -> str:
    """The experiment's id, created with `artifact_location` (an S3 prefix) when new.
    An existing experiment that stores its artifacts elsewhere is refused: MLflow
    cannot move it, and silently writing locally would betray `storage=s3`."""
    experiment = get_or_create_experiment(MlflowClient(), name, artifact_location)
    check_artifact_location(experiment.artifact_location, artifact_location, f"experiment {name!r}")
    return experiment.experiment_id


def check_artifact_location(actual: str, wanted: str | None, what: str) -> None:
    if wanted and not actual.startswith(wanted.rsplit("/", 1)[0] + "/"):
        raise StorageError(
            f"{what} stores artifacts at {actual}, not under {wanted}; use a new "
            "tracking.experiment_name (the kit creates it in S3) or storage=local"
        )


@contextmanager
def bounded_store(timeout_s: float = ERROR_PATH_TIMEOUT_S) -> Iterator[None]:
    """For error handlers: calls to a tracking server inside give up after one try of at
    most `timeout_s` instead of MLflow's minutes of retries (the store may be what failed)."""
    with environment.bounded_http(timeout_s):
        yield


@contextmanager
def refusing_read_only(experiment: str) -> Iterator[None]:
    """A tracking server with authentication that refuses this user a run in `experiment`
    (403 PERMISSION_DENIED: a READ permission) is one line naming the experiment."""
    try:
        yield
    except MlflowException as exc:
        if exc.error_code != "PERMISSION_DENIED":
            raise
        raise StorageError(
            f"the tracking server refuses this user (MLFLOW_TRACKING_USERNAME) runs in "
            f"experiment {experiment!r}: permission denied, it may only read it; ask an admin "
            "of the server for EDIT permission on it, or use another tracking.experiment_name"
        ) from None


@contextmanager
def active_run(
    tracking: TrackingConfig,
    run_name: str,
    tags: Mapping[str, str],
    artifact_location: str | None = None,
    parent_run_id: str | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Open (or continue) the run, tag it, and always end it with an honest status.
    `artifact_location`: where a new experiment keeps its artifacts (None: MLflow's default).
    `parent_run_id`: open a child of that run (a sweep's configuration)."""
    existing = None if parent_run_id else run_id_from_mlflow_run()
    if parent_run_id:
        # Created by the client: the fluent API would resume MLFLOW_RUN_ID (the parent,
        # when `mlflow run -e sweep` started the sweep) instead of opening a new run.
        client = MlflowClient()
        experiment = client.get_run(parent_run_id).info.experiment_id
        with refusing_read_only(client.get_experiment(experiment).name):
            child = client.create_run(
                experiment, run_name=run_name, tags={**tags, PARENT_TAG: parent_run_id}
            )
        # The fluent API refuses a run outside the process's active experiment (one an
        # earlier run or the caller set): make the run's own experiment the active one.
        mlflow.set_experiment(experiment_id=experiment)
        run = mlflow.start_run(run_id=child.info.run_id)
    elif existing:
        mlflow.set_experiment(experiment_id=MlflowClient().get_run(existing).info.experiment_id)
        run = mlflow.start_run(run_id=existing)
        MlflowClient().update_run(existing, name=run_name)
        # `mlflow run` already recorded where the code came from (a git URL, for one); keep
        # its values and add only what it does not record (dirty flag, branch, note).
        recorded = run.data.tags
        mlflow.set_tags({k: v for k, v in tags.items() if k not in recorded or k == GIT_DIRTY})
        # What MLflow recorded verbatim (a git URL with a token in it) is stored redacted.
        mlflow.set_tags({k: redact(v) for k, v in recorded.items() if redact(v) != v})
    else:
        with refusing_read_only(tracking.experiment_name):
            mlflow.set_experiment(
                experiment_id=experiment_id(tracking.experiment_name, artifact_location)
            )
            run = mlflow.start_run(run_name=run_name, tags=dict(tags))
    try:
        yield run
    except (Interrupted, KeyboardInterrupt) as exc:
        reason = str(exc) if isinstance(exc, Interrupted) else "interrupted (KeyboardInterrupt)"
        if _end_with(run.info.run_id, Status.KILLED, reason) and isinstance(exc, Interrupted):
            raise exc.ended(run.info.run_id) from None
        raise
    except BaseException as exc:
        failure = store_failure(exc)
        if failure:  # the store failed: the one line says so, and whether the end went in
            reason = f"the tracking store failed: {failure}"
            ended = _end_with(run.info.run_id, Status.FAILED, reason, quiet=True)
            store = redact(mlflow.get_tracking_uri())
            raise StoreFailed(run.info.run_id, store, failure, ended) from None
        _end_with(run.info.run_id, Status.FAILED, f"{type(exc).__name__}: {first_line(exc)}")
        raise
    else:
        mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))


def _end_with(run_id: str, status: str, reason: str, quiet: bool = False) -> bool:
    """End the open run `status` with `reason` in kit.error, bounded; True when done. The
    store may be what failed: then one warning (none when `quiet`: the caller says it),
    and the run's own error is what counts."""
    problem: Exception | None = None
    with bounded_store():
        try:
            mlflow.set_tag(ERROR_TAG, clip(redact(reason)))
        except Exception as exc:
            problem = exc
        try:  # even without the tag: end_run also drops the run from this process, so
            mlflow.end_run(status)  # MLflow's exit hook does not end it FINISHED later
        except Exception as exc:
            problem = problem or exc
    if problem is not None:
        if not quiet:
            logging.getLogger("logistic_regression").warning(
                "could not end run %s %s: %s", run_id, status, redact(first_line(problem))
            )
        return False
    return True


def log_params(run_id: str, params: Mapping[str, str]) -> None:
    """Log params, each value redacted (`uris.redact`) and clipped. On the run `mlflow
    run` made, which already holds the `-P` values as typed (and shell-quoted: `'陽性'`),
    a kit value under a name it logged with another value goes in `<name>_resolved`:
    MLflow refuses to change a param."""
    values = {k: clip(redact(v)) for k, v in params.items()}
    if run_id == run_id_from_mlflow_run():
        values = beside_recorded(MlflowClient().get_run(run_id).data.params, values)
    MlflowClient().log_batch(run_id, params=[Param(k, v) for k, v in values.items()])


def beside_recorded(recorded: Mapping[str, str], values: Mapping[str, str]) -> dict[str, str]:
    """`values` without what `recorded` already holds; a clash renamed `<name>_resolved`."""
    kept: dict[str, str] = {}
    for name, value in values.items():
        if name not in recorded:
            kept[name] = value
        elif recorded[name] != value:
            kept[f"{name}_resolved"] = value
    return kept


def log_tags(run_id: str, tags: Mapping[str, str]) -> None:
    """Set tags, each value redacted (`uris.redact`) and clipped."""
    MlflowClient().log_batch(run_id, tags=[RunTag(k, clip(redact(v))) for k, v in tags.items()])


def log_text(run_id: str, text: str, path: str) -> None:
    """A small text artifact (a command's output), redacted, straight to the store."""
    MlflowClient().log_text(run_id, redact(text), path)


def log_metrics(run_id: str, metrics: list[tuple[str, float, int]]) -> None:
    """Log `(key, value, step)` triples in one batch (MLflow chunks it as its limits need)."""
    now = int(time.time() * 1000)
    records = [Metric(key, value, now, step) for key, value, step in metrics]
    MlflowClient().log_batch(run_id, metrics=records)


def rename(run_id: str, name: str) -> None:
    MlflowClient().update_run(run_id, name=name)


def run_note(run_id: str) -> str:
    return MlflowClient().get_run(run_id).data.tags.get("mlflow.note.content", "")


def recorded_tags(run_id: str) -> dict[str, str]:
    """The run's tags as stored (under `mlflow run`, MLflow's own values for its keys)."""
    return dict(MlflowClient().get_run(run_id).data.tags)


def run_name(run_id: str) -> str:
    return MlflowClient().get_run(run_id).info.run_name or ""


def experiment_of(run_id: str) -> str:
    return MlflowClient().get_run(run_id).info.experiment_id


# The per-fold series of a cross-validated metric: `cv_roc_auc_per_fold`, step k fold k.
FOLD_SUFFIX = "_per_fold"


def metrics_with_steps(run: Run) -> dict[str, float]:
    """The run's metrics, a stepped series (`cv_<m>`, one value per fold) as one entry per
    step, `cv_roc_auc[3]`: what a reproduction must match, fold by fold."""
    client = MlflowClient()
    run_id, latest = run.info.run_id, run.data.metrics
    values: dict[str, float] = {}
    for key, value in latest.items():
        history = client.get_metric_history(run_id, key) if key.startswith("cv_") else []
        if len({m.step for m in history}) > 1:
            values.update({f"{key}[{m.step}]": m.value for m in history})
        else:
            values[key] = value
    return values


def experiment_name(experiment_id: str) -> str:
    return MlflowClient().get_experiment(experiment_id).name


def run_status(run_id: str) -> str:
    return MlflowClient().get_run(run_id).info.status


def artifact_uri(run_id: str) -> str:
    return MlflowClient().get_run(run_id).info.artifact_uri


def metric_value(run_id: str, metric: str) -> float | None:
    return MlflowClient().get_run(run_id).data.metrics.get(metric)


def end_run(run_id: str, status: str, tags: Mapping[str, str]) -> None:
    log_tags(run_id, tags)
    MlflowClient().set_terminated(run_id, status)


def run_summary(run_id: str):
    """(run info, metrics) of a run, for notifications."""
    run = MlflowClient().get_run(run_id)
    return run.info, dict(run.data.metrics)
