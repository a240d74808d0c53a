"""What a run recorded, enough to re-run it (`read_recorded`), and whether its data is
still the data it read (`check_data`): `reproduce` refuses on either before any work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from logistic_regression import data, packages, provenance
from logistic_regression.errors import KitError
from logistic_regression.formats import read_options
from logistic_regression.packages import Environment
from logistic_regression.storage import s3
from logistic_regression.tracking import runs
from logistic_regression.uris import redact, without_redacted_userinfo


class NotReproducible(KitError):
    """Reproduction is impossible; the message says why."""


@dataclass(frozen=True)
class Recorded:
    """What the original run recorded, enough to re-run it."""

    run_id: str
    run_name: str
    experiment_id: str
    repository: str  # what `git clone` takes
    subdirectory: str
    commit: str
    dirty: bool
    config: dict
    input_path: str
    input_digest: str
    metrics: dict[str, float]
    environment: Environment
    patch: Path | None
    tags: dict[str, str]
    input_version: str | None = None  # S3 VersionId, when the bucket is versioned


def download(run_id: str, path: str, destination: Path) -> Path | None:
    try:
        return Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=path, dst_path=str(destination)
            )
        )
    except (MlflowException, OSError):
        return None


def _repository(tags: dict[str, str]) -> tuple[str, str]:
    """(clone source, subdirectory) from the source name, else from the remote URL."""
    source = tags.get(provenance.SOURCE_NAME, "")
    location, _, subdirectory = source.partition("#")
    if location.startswith("file://"):
        local = Path(location.removeprefix("file://"))
        if local.is_dir():
            return str(local), subdirectory
        location = tags.get(provenance.GIT_REPO_URL, "")
    if "://" in location or location.startswith("git@"):
        # Recorded redacted (`https://***@host/...`): git authenticates its own way.
        return without_redacted_userinfo(location), subdirectory
    raise NotReproducible(
        f"run's source {source!r} is not a git repository the kit can clone; "
        "only runs recorded from a git checkout or a git URL can be reproduced"
    )


def read_recorded(client: MlflowClient, run_id: str, scratch: Path) -> Recorded:
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise NotReproducible(
            f"no run with id {run_id!r} in {redact(mlflow.get_tracking_uri())}"
        ) from None
    tags = run.data.tags
    commit = tags.get(provenance.GIT_COMMIT)
    if not commit:
        raise NotReproducible(f"run {run_id} recorded no git commit, so its code is unknown")
    repository, subdirectory = _repository(tags)
    dirty = tags.get(provenance.GIT_DIRTY) == "true"
    patch = download(run_id, "uncommitted.patch", scratch) if dirty else None
    if dirty and patch is None:
        raise NotReproducible(
            f"run {run_id} was made from a dirty tree and its uncommitted.patch was not "
            "recorded, so its exact code is unknown"
        )
    config_file = download(run_id, "config.yaml", scratch)
    if config_file is None:
        raise NotReproducible(f"run {run_id} has no config.yaml artifact to replay")
    environment = download(run_id, "environment.txt", scratch)
    return Recorded(
        run_id=run_id,
        run_name=run.info.run_name,
        experiment_id=run.info.experiment_id,
        repository=repository,
        subdirectory=subdirectory,
        commit=commit,
        dirty=dirty,
        config=yaml.safe_load(config_file.read_text()),
        input_path=run.data.params.get("input_path", ""),
        input_digest=run.data.params.get("input_digest", ""),
        input_version=run.data.params.get("input_version") or None,
        metrics=runs.metrics_with_steps(run),
        environment=packages.parse(environment.read_text()) if environment else Environment(),
        patch=patch,
        tags=tags,
    )


def input_uri(recorded: Recorded) -> str:
    """The input as the run read it: the recorded S3 version when there is one."""
    if recorded.input_version and recorded.input_path.startswith("s3://"):
        return s3.versioned_uri(recorded.input_path, recorded.input_version)
    return recorded.input_path


def check_data(recorded: Recorded) -> None:
    """The input must still be the bytes the run read (read with its recorded encoding
    and separators): the same file, or a versioned S3 object's recorded version."""
    options = read_options((recorded.config or {}).get("data") or {})
    try:
        _, ref = data.read_table(input_uri(recorded), options=options)
    except KitError as exc:
        raise NotReproducible(f"the run's input cannot be read now: {exc}") from None
    if ref.digest != recorded.input_digest:
        raise NotReproducible(
            f"input {recorded.input_path} changed since run {recorded.run_id}: recorded digest "
            f"{recorded.input_digest[:12]}…, now {ref.digest[:12]}…, and no version of the "
            "original data was recorded"
        )
