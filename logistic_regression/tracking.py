"""The one module that talks to MLflow: tracking URI, experiment, run, params, metrics, tags.

Public MLflow APIs only. A run is never left RUNNING: `active_run` ends it FINISHED,
FAILED (with the reason in the `kit.error` tag) or KILLED, whatever happens inside.
When `mlflow run` started the run (it exports MLFLOW_RUN_ID), the kit continues that run
instead of opening another one.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

from logistic_regression.config import TrackingConfig, flatten_tree
from logistic_regression.errors import first_line
from logistic_regression.provenance import GIT_DIRTY

ERROR_TAG = "kit.error"
WARNINGS_TAG = "kit.warnings"
# MLflow refuses param values longer than this (MAX_PARAM_VAL_LENGTH in MLflow 3.x).
MAX_PARAM_LENGTH = 6000
TRUNCATION_MARK = "...[truncated]"


def use_tracking_uri(tracking: TrackingConfig) -> str:
    """MLFLOW_TRACKING_URI wins over the config, as MLflow users expect."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or tracking.uri
    mlflow.set_tracking_uri(uri)
    return uri


def absolute_tracking_uri(uri: str) -> str:
    """A relative `sqlite:///mlflow.db` made absolute, so a child process in another
    folder records into the same store."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def run_id_from_mlflow_run() -> str | None:
    """The run `mlflow run` created for this process, if it did."""
    return os.environ.get("MLFLOW_RUN_ID") or None


_URI_PASSWORD = re.compile(r"(?P<scheme>[A-Za-z][\w+.-]*://)(?P<user>[^/@:\s]*):[^/@\s]*@")


def redact(text: str) -> str:
    """Hide the password of any `scheme://user:password@host` in a value bound for MLflow."""
    return _URI_PASSWORD.sub(r"\g<scheme>\g<user>:***@", text)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"model": {"C": 0.5}}` -> `{"model.C": "0.5"}` as params: passwords redacted,
    values cut to MLflow's length limit."""
    flat: dict[str, str] = {}
    for name, value in flatten_tree(tree, prefix).items():
        text = redact(str(value))
        if len(text) > MAX_PARAM_LENGTH:
            text = text[: MAX_PARAM_LENGTH - len(TRUNCATION_MARK)] + TRUNCATION_MARK
        flat[name] = text
    return flat


def fail_run(run_id: str, reason: str, status: str = "FAILED") -> None:
    """Record why a run stopped and end it; used for runs this process did not open itself."""
    client = MlflowClient()
    client.set_tag(run_id, ERROR_TAG, reason[:MAX_PARAM_LENGTH])
    client.set_terminated(run_id, status)


@contextmanager
def active_run(
    tracking: TrackingConfig, run_name: str, tags: Mapping[str, str]
) -> Iterator[mlflow.ActiveRun]:
    """Open (or continue) the run, tag it, and always end it with an honest status."""
    existing = run_id_from_mlflow_run()
    if existing:
        run = mlflow.start_run(run_id=existing)
        MlflowClient().update_run(existing, name=run_name)
        # `mlflow run` already recorded where the code came from (a git URL, for one); keep
        # its values and add only what it does not record (dirty flag, branch, note).
        recorded = run.data.tags
        mlflow.set_tags({k: v for k, v in tags.items() if k not in recorded or k == GIT_DIRTY})
    else:
        mlflow.set_experiment(tracking.experiment_name)
        run = mlflow.start_run(run_name=run_name, tags=dict(tags))
    try:
        yield run
    except KeyboardInterrupt:
        mlflow.set_tag(ERROR_TAG, "interrupted (KeyboardInterrupt)")
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException as exc:
        mlflow.set_tag(ERROR_TAG, f"{type(exc).__name__}: {first_line(exc)}"[:MAX_PARAM_LENGTH])
        mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
        raise
    else:
        mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))


def log_params(run_id: str, params: Mapping[str, str]) -> None:
    MlflowClient().log_batch(run_id, params=[Param(k, v) for k, v in params.items()])


def log_tags(run_id: str, tags: Mapping[str, str]) -> None:
    MlflowClient().log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])


def log_metrics(run_id: str, metrics: list[tuple[str, float, int]]) -> None:
    """Log `(key, value, step)` triples in one batch (MLflow chunks it as its limits need)."""
    now = int(time.time() * 1000)
    records = [Metric(key, value, now, step) for key, value, step in metrics]
    MlflowClient().log_batch(run_id, metrics=records)


def log_dataset(frame, source: str, name: str, target: str, digest: str) -> None:
    """Record the input with `mlflow.log_input`, under the kit's own content digest."""
    with warnings.catch_warnings():
        # MLflow 3.17 registers its local-artifact source twice and warns on every plain
        # path that it "can be interpreted in multiple ways" (both are the same class).
        warnings.filterwarnings("ignore", message="The specified dataset source can be")
        # Its schema hint about integer columns concerns model inputs, not a logged table.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        dataset = mlflow.data.from_pandas(
            frame, source=source, name=name, targets=target, digest=digest[:36]
        )
        mlflow.log_input(dataset, context="training")


def log_artifacts(folder: Path) -> None:
    mlflow.log_artifacts(str(folder))


def model_signature(features: pd.DataFrame, prediction: np.ndarray) -> ModelSignature:
    """Input columns as doubles (the pipeline casts them), the output as the label's type."""
    output_type = "long" if np.issubdtype(prediction.dtype, np.integer) else "double"
    return ModelSignature(
        inputs=Schema([ColSpec("double", str(name)) for name in features.columns]),
        outputs=Schema([ColSpec(output_type)]),
    )


def log_model(model, input_example: pd.DataFrame) -> str:
    """Log the fitted pipeline; requirements are pinned here, so MLflow need not infer them
    (inferring reloads the model in a subprocess: seconds per run)."""
    signature = model_signature(input_example, model.predict(input_example))
    requirements = mlflow.sklearn.get_default_pip_requirements(include_skops=True)
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature,
        input_example=input_example,
        pip_requirements=requirements,
    )
    return info.model_uri


def artifact_uri(run_id: str) -> str:
    return MlflowClient().get_run(run_id).info.artifact_uri
