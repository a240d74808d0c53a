"""A run's statuses, by MLflow's names (`mlflow.entities.RunStatus`). A `StrEnum`, so a
status compares equal to the string MLflow returns and is stored as it, and modules that
must not import MLflow (the pure summary page, the refusal paths) use the same names
(tests/test_status.py keeps them equal to MLflow's)."""

from enum import StrEnum


class Status(StrEnum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
