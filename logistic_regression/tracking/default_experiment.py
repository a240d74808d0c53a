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

Importing this module costs nothing: MLflow loads it in every process of the
environment, so Hydra and the config are imported only when the provider answers.
"""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking.default_experiment.abstract_context import DefaultExperimentProvider


def kit_checkout(folder: Path) -> bool:
    """Is `folder` the root of a checkout of this kit (its MLproject and package)?"""
    return (folder / "MLproject").is_file() and (
        folder / "logistic_regression" / "mlproject.py"
    ).is_file()


def configured_experiment() -> tuple[str, str | None]:
    """The experiment the kit's own commands use, as conf/ (and conf/local/) set it, and
    where the kit would keep its artifacts (an S3 prefix for storage=s3)."""
    from logistic_regression.config import compose_config, experiment_artifact_location

    config = compose_config([])
    return config.tracking.experiment_name, experiment_artifact_location(config)


class KitExperimentProvider(DefaultExperimentProvider):
    """The kit's experiment for runs started in a kit checkout without one."""

    def in_context(self) -> bool:
        return kit_checkout(Path.cwd())

    def get_experiment_id(self) -> str:
        from mlflow import MlflowClient

        from logistic_regression.tracking.experiments import get_or_create_experiment

        # An error here (the experiment is deleted) is a warning MLflow prints, naming
        # it; the run then goes to MLflow's Default, and the kit says so in one line.
        name, artifact_location = configured_experiment()
        return get_or_create_experiment(MlflowClient(), name, artifact_location).experiment_id
