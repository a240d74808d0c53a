"""Logged models in MLflow 3: created when the run starts training, saved in the
background, marked READY once every file is stored, registered on request."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import LoggedModelOutput
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import AnyType

import logistic_regression_casts as casts
from logistic_regression_casts import serving

# Types beyond skops' defaults that the kit's pipeline holds (and nothing else): the
# imputers remember the dtype they were fitted on; the casts are the kit's own.
SKOPS_TRUSTED_TYPES = [
    "numpy.dtype",
    f"{casts.__name__}.{casts.as_numbers.__name__}",
    f"{casts.__name__}.{casts.as_text.__name__}",
]


def column_type(values: pd.Series | np.ndarray) -> str:
    """MLflow's name for a column's type: the raw type the user has, not the encoding."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "long"
    if pd.api.types.is_float_dtype(dtype):
        return "double"
    return "string"


def model_signature(features: pd.DataFrame, prediction: np.ndarray) -> ModelSignature:
    """The raw input columns by name, each of type `Any`; the output as the label's type;
    and the one parameter the model takes: `predict_method` (`predict`, or
    `predict_proba` for the probabilities: serving.py).

    `Any`, because MLflow refuses before the model sees them what pandas reads from the
    user's own file: the int64 of a whole-number column declared `double`, the float64 of
    the same column with a gap declared `long`, nullable `Int64` or `boolean` either way,
    and the float64 NaN of a text column empty in every row sent (a one-row CSV request)
    declared `string`. The model's first step (logistic_regression_casts) makes each
    column what training saw, a missing cell missing however it arrives."""
    return ModelSignature(
        inputs=Schema([ColSpec(AnyType(), str(name)) for name in features]),
        outputs=Schema([ColSpec(column_type(np.asarray(prediction)))]),
        params=ParamSchema([ParamSpec("predict_method", "string", "predict")]),
    )


def create_model(run_id: str, params: Mapping[str, str]) -> tuple[str, str]:
    """Register the run's model with MLflow 3's logged-model API (as `log_model` does) and
    return `(model_id, artifact_location)`; its files are saved and uploaded in the
    background, and `finalize_model` marks it READY once they are stored."""
    client = MlflowClient()
    experiment = client.get_run(run_id).info.experiment_id
    model = client.create_logged_model(
        experiment, name="model", source_run_id=run_id, params=dict(params)
    )
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    return model.model_id, model.artifact_location


def save_model(
    estimator,
    input_example: pd.DataFrame,
    path: str,
    run_id: str,
    model_id: str,
    artifact_location: str,
) -> None:
    """Write the MLflow model folder (skops format, explicit signature, pinned
    requirements so MLflow need not reload the model to infer them). Pure file work:
    it runs on the second core while the main thread goes on."""
    import mlflow.sklearn
    from mlflow.models import Model

    signature = model_signature(input_example, estimator.predict(input_example))
    metadata = Model(
        artifact_path=artifact_location, model_uuid=model_id, run_id=run_id, model_id=model_id
    )
    with tempfile.TemporaryDirectory() as folder:
        mlflow.sklearn.save_model(
            estimator,
            path,
            mlflow_model=metadata,
            signature=signature,
            input_example=input_example,
            code_paths=model_code(folder),
            **saving_options(),
        )
    # python_function loads through the kit's loader (in the model's code/), which takes
    # `predict_method`; the sklearn flavor stays as MLflow wrote it
    written = Model.load(path)
    written.flavors["python_function"]["loader_module"] = serving.__name__
    written.save(str(Path(path) / "MLmodel"))


def warm_up() -> None:
    """Pay a process's one-time costs of saving a model ahead (in the background worker,
    while the run is prepared): importing skops, which lists every scikit-learn estimator,
    and MLflow's scan of every installed distribution to check the pinned requirements
    against them. About a second on the first save, off the run's path this way. A
    two-row model saved with the same options into a folder that is then removed does
    both through MLflow's public API."""
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    tiny = LogisticRegression().fit(np.array([[0.0], [1.0]]), np.array([0, 1]))
    with tempfile.TemporaryDirectory() as folder:
        mlflow.sklearn.save_model(tiny, str(Path(folder) / "model"), **saving_options())


def saving_options() -> dict:
    """What every save of the kit passes MLflow (the run's model and the warm-up alike):
    skops with the kit's trusted types, and pinned requirements, so MLflow need not
    reload the model to infer them."""
    import mlflow.sklearn

    return {
        "pip_requirements": mlflow.sklearn.get_default_pip_requirements(include_skops=True),
        "skops_trusted_types": SKOPS_TRUSTED_TYPES,
    }


def model_code(folder: str) -> list[str]:
    """The kit's code the model runs (`logistic_regression_casts`), copied into `folder`
    without caches: MLflow stores it with the model (`code/`) and puts it on the path when
    it loads it, so the model loads where the kit is not installed."""
    package = Path(casts.__file__).parent
    copy = Path(folder) / package.name
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return [str(copy)]


def finalize_model(model_id: str) -> None:
    MlflowClient().finalize_logged_model(model_id, "READY")


def register_model(model_id: str, name: str) -> str:
    """A new version of `name` in the Model Registry from the logged model; its number."""
    version = mlflow.register_model(f"models:/{model_id}", name)
    return str(version.version)


def fail_unsaved(run_id: str, handed_over: set[str]) -> None:
    """The run failed: its logged models still PENDING whose files were never handed to
    the writer (it failed first) can never become READY, so they end FAILED. A model
    handed over stays PENDING: its files wait in the spool, and `sync` marks it READY."""
    client = MlflowClient()
    experiment = client.get_run(run_id).info.experiment_id
    found = client.search_logged_models(
        experiment_ids=[experiment], filter_string=f"source_run_id = '{run_id}'"
    )
    for model in found:
        if model.model_id not in handed_over and str(model.status) == "PENDING":
            client.finalize_logged_model(model.model_id, "FAILED")
