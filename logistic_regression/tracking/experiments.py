"""An experiment looked up by name and created when missing, safe when many start at once.

Several clients of one tracking server (a team, a sweep's workers, two terminals) may
all find the experiment missing and all create it: the store keeps the first and answers
the others RESOURCE_ALREADY_EXISTS. That answer means the experiment is there now, so
the loser reads it back instead of failing its run.

A deleted experiment (the UI's delete, `mlflow experiments delete`) keeps its name until
it is purged, and MLflow refuses new runs in it: that is one line saying how to restore
it, not a traceback.

The MLflow UI opens an experiment without a `mlflow.experimentKind` tag on its GenAI
overview, with a "Detect Issues" pop-up. An experiment the kit creates is tagged as
model training (`custom_model_development`), so the UI opens on its runs.
"""

from __future__ import annotations

from mlflow.entities import Experiment
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from logistic_regression.errors import KitError

# What the MLflow UI reads to choose an experiment's first page (its own values).
KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"


class DeletedExperiment(KitError):
    """The experiment by that name is deleted (not yet purged): no run can go in it."""


def get_or_create_experiment(
    client: MlflowClient, name: str, artifact_location: str | None = None
) -> Experiment:
    """The experiment called `name`; created (with `artifact_location`) when missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return active(experiment)
    try:
        created = client.create_experiment(name, artifact_location, tags={KIND_TAG: MODEL_TRAINING})
        return client.get_experiment(created)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        created_meanwhile = client.get_experiment_by_name(name)
        if created_meanwhile is None:
            raise
        return active(created_meanwhile)


def active(experiment: Experiment) -> Experiment:
    if experiment.lifecycle_stage == "deleted":
        raise DeletedExperiment(
            f"experiment {experiment.name!r} (id {experiment.experiment_id}) is deleted; "
            f"restore it with `mlflow experiments restore --experiment-id "
            f"{experiment.experiment_id}` against this tracking store, or use another "
            "experiment name"
        )
    return experiment
