"""The input table recorded on the run (`mlflow.log_input`): MLflow's dataset, under the
kit's own digest, cheap to log for a large table and safe when runs log it at once."""

from __future__ import annotations

import time
import warnings

import mlflow
from mlflow.exceptions import MlflowException

from logistic_regression.uris import redact

# Rows MLflow infers the logged dataset's schema from. MLflow visits every cell of the
# frame it is given, in Python (mlflow/mlflow#13085): 19 s for 200,000 x 50. Column types
# come from the dtypes, which a sample has too.
SCHEMA_SAMPLE_ROWS = 1000


# Runs of one experiment logging the same table at the same moment: MLflow's store looks
# for the dataset, neither finds it, and the second insert breaks its key (seen with eight
# clients of one server on PostgreSQL). Once the first is committed, a retry finds it.
DATASET_RACE = ("dataset_pk", "UNIQUE constraint failed: datasets.", "Duplicate entry")
DATASET_ATTEMPTS = 3


def log_dataset(frame, source: str, name: str, target: str, digest: str) -> None:
    """Record the input with `mlflow.log_input`, under the kit's own content digest (of
    the whole input), with the schema inferred from a sample and the profile (row count)
    of the whole frame; retried when another run logged the same table at that moment."""
    with warnings.catch_warnings():
        # MLflow 3.17 registers its local-artifact source twice and warns on every plain
        # path that it "can be interpreted in multiple ways" (both are the same class).
        warnings.filterwarnings("ignore", message="The specified dataset source can be")
        # Its schema hint about integer columns concerns model inputs, not a logged table.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
            frame, source=redact(source), name=redact(name), targets=target, digest=digest[:36]
        )
        sample = mlflow.data.from_pandas(  # type: ignore[attr-defined]
            frame.head(SCHEMA_SAMPLE_ROWS), source=source, targets=target, digest=digest[:36]
        )
        dataset.schema = sample.schema  # a cached property: MLflow's own, from the sample
        for attempt in range(1, DATASET_ATTEMPTS + 1):
            try:
                mlflow.log_input(dataset, context="training")
                return
            except MlflowException as exc:
                if attempt == DATASET_ATTEMPTS or not any(s in str(exc) for s in DATASET_RACE):
                    raise
                time.sleep(0.2 * attempt)
