"""The logged model's python_function loader (its MLmodel's `loader_module`): the
scikit-learn pipeline, answering with labels by default, or with the label and each
class's probability when asked:

    model.predict(rows)                                         # the labels
    model.predict(rows, params={"predict_method": "predict_proba"})
    # a table: `prediction`, then `probability_<class>` per class (predictions.csv's columns)

The same through `mlflow models serve`: `{"dataframe_split": ..., "params":
{"predict_method": "predict_proba"}}`. MLflow's own scikit-learn loader ignores `params`,
so the kit's model names this loader instead; `mlflow.sklearn.load_model` still gives
the pipeline itself.
"""

from __future__ import annotations

import os

import pandas as pd

PREDICT_METHODS = ("predict", "predict_proba")


class ServedModel:
    """What `mlflow.pyfunc.load_model` returns the predictions of."""

    def __init__(self, pipeline):
        self.pipeline = pipeline

    def get_raw_model(self):
        return self.pipeline

    def predict(self, data, params: dict | None = None):
        method = (params or {}).get("predict_method") or "predict"
        if method == "predict":
            return self.pipeline.predict(data)
        if method == "predict_proba":
            return probabilities(self.pipeline, data)
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        raise MlflowException(
            f"predict_method={method!r} is not allowed; use one of {', '.join(PREDICT_METHODS)}",
            error_code=INVALID_PARAMETER_VALUE,
        )


def probabilities(pipeline, data) -> pd.DataFrame:
    """The label and one probability column per class, rows in the order given."""
    probability = pipeline.predict_proba(data)
    table = pd.DataFrame({"prediction": pipeline.predict(data)})
    for index, label in enumerate(pipeline.classes_):
        table[f"probability_{label}"] = probability[:, index]
    if isinstance(data, pd.DataFrame):
        table.index = data.index
    return table


def _load_pyfunc(path: str) -> ServedModel:
    """Called by `mlflow.pyfunc.load_model` with the model file (`model.skops`)."""
    import mlflow.sklearn

    folder = os.path.dirname(path) if os.path.isfile(path) else path
    return ServedModel(mlflow.sklearn.load_model(folder))
