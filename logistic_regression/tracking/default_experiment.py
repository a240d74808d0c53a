"""One experiment however a run starts: `mlflow run .` lands where the kit's own commands
(`train`, sweeps, `best`, `inspect`, baselines) look, not in MLflow's "Default".

MLflow asks its default-experiment providers (the public plugin group
`mlflow.default_experiment_provider`, registered in pyproject.toml) for an experiment
whenever a run starts without one: no `--experiment-name`/`--experiment-id`, no
MLFLOW_EXPERIMENT_NAME/_ID. This provider answers only inside a checkout of the kit (the
working folder holds its MLproject and package), with the experiment the kit's config
names (`tracking.experiment_name`, conf/ and conf/local/ included). Anywhere else, and
for `mlflow run <git-url>` started from another folder, MLflow's own default stands;
the run then says so in one line (`pipeline`), naming `--experiment-name`.

Answering is the first time `mlflow run` touches the tracking store, so the provider
checks it first, as the kit's own commands do (`tracking.store.check`, bounded by
`tracking.timeout_s`): a server that does not answer is one line within that bound
rather than minutes of MLflow's retries, and a new SQLite file's tables are made by one
process at a time. A store the kit cannot use ends `mlflow run` there, with that line
and exit code 2, before any run exists.

Importing this module costs nothing: MLflow loads it in every process of the
environment, so Hydra and the config are imported only when the provider answers.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mlflow.tracking.default_experiment.abstract_context import DefaultExperimentProvider


def kit_checkout(folder: Path) -> bool:
    """Is `folder` the root of a checkout of this kit (its MLproject and package)?"""
    return (folder / "MLproject").is_file() and (
        folder / "logistic_regression" / "mlproject.py"
    ).is_file()


def configured_experiment() -> tuple[str, str | None, float]:
    """The experiment the kit's own commands use, as conf/ (and conf/local/) set it,
    where the kit would keep its artifacts (an S3 prefix for storage=s3), and the bound
    on a call to the tracking store."""
    from logistic_regression.config import compose_config, experiment_artifact_location

    config = compose_config([])
    return (
        config.tracking.experiment_name,
        experiment_artifact_location(config),
        config.tracking.timeout_s,
    )


class KitExperimentProvider(DefaultExperimentProvider):
    """The kit's experiment for runs started in a kit checkout without one."""

    def in_context(self) -> bool:
        return kit_checkout(Path.cwd())

    def get_experiment_id(self) -> str:
        import mlflow
        from mlflow import MlflowClient

        from logistic_regression.environment import private_files
        from logistic_regression.errors import StorageError
        from logistic_regression.tracking import store
        from logistic_regression.tracking.experiments import get_or_create_experiment

        # An error here (the experiment is deleted) is a warning MLflow prints, naming
        # it; the run then goes to MLflow's Default, and the kit says so in one line.
        name, artifact_location, timeout_s = configured_experiment()
        # `mlflow run` makes the store here on a first run: its user's alone (mlflow.db
        # 0600), as when the kit's own commands make it
        with private_files():
            try:
                store.check(mlflow.get_tracking_uri(), timeout_s)
            except StorageError as exc:  # already redacted; SystemExit passes MLflow's catch
                print(f"error: {exc}", file=sys.stderr)
                raise SystemExit(2) from None
            experiment = get_or_create_experiment(MlflowClient(), name, artifact_location)
        return experiment.experiment_id
