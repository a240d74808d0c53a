"""What one run recorded, read back for `compare` (`RunFacts`), and a run's baseline.

Read only, through MLflow's client: the run's params, tags, metrics (the folds as the
steps of `cv_<m>`) and three small artifacts (`config.yaml`, `environment.txt`,
`uncommitted.patch`). A run may not have recorded something (an imported run has no
code, no config, no environment): that value is None, shown as "not recorded", never a
reason to fail. Every text is shown as the kit shows any (`shown`: secrets hidden).
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from logistic_regression import importer, packages, provenance
from logistic_regression.config import flatten_tree
from logistic_regression.errors import KitError
from logistic_regression.recorded import download
from logistic_regression.tracking import baselines, runs
from logistic_regression.uris import printable, redact, without_redacted_userinfo

# Data params shown in the data section, not among the parameters, by the name shown.
DATA_PARAMS = {
    "input_path": "input",
    "input_digest": "digest",
    "input_version": "S3 version",
    "input_etag": "ETag",
    "task": "task",
    "classes": "classes",
    "positive_label": "positive label",
}
# Params not compared: where an earlier kit's run put its predictions (it holds the run's
# id, so it always differs; now the tag kit.output_path), and `input` as given (the
# resolved data.input, shown among the settings, says the same).
NOT_COMPARED = ("output_path", "input")
LEGACY_FOLD = re.compile(r"^(cv_.+)_fold_(\d+)$")  # runs before folds were steps of cv_<m>


class RunNotFound(KitError):
    """A run id that names no run (or a deleted one) in this tracking store."""


def shown(value: object) -> str:
    """A recorded value as the kit shows any text: secrets hidden, controls escaped."""
    return printable(redact(str(value)))


@dataclass(frozen=True)
class RunFacts:
    """What one run recorded, for comparing (None: not recorded)."""

    run_id: str
    name: str
    experiment: str
    status: str
    origin: str  # "a reproduction of run …", "a configuration of sweep run …", "imported …"
    settings: dict[str, str]  # the resolved config (config.yaml), then params it lacks
    code: dict[str, str | None]
    sources: tuple[str, ...]  # where its code can be cloned from
    data: dict[str, str | None]
    environment: dict[str, str] | None  # package (python, platform) -> version
    metrics: dict[str, float]
    folds: dict[str, dict[int, float]]  # cv_<m> -> fold number -> value


def _text_artifact(run_id: str, path: str, scratch: Path) -> str | None:
    local = download(run_id, path, scratch)
    try:
        return None if local is None else local.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _run(client: MlflowClient, run_id: str):
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise RunNotFound(
            f"no run with id {run_id!r} in {redact(mlflow.get_tracking_uri())}"
        ) from None
    if run.info.lifecycle_stage == "deleted":
        raise RunNotFound(
            f"run {run_id} is deleted; restore it with `mlflow runs restore --run-id "
            f"{run_id}` against this tracking store to compare it"
        )
    return run


def _origin(tags: dict[str, str]) -> str:
    if original := provenance.reproduction_of(tags):
        verdict = tags.get("reproduce.verdict")
        return f"a reproduction of run {original}" + (f" ({verdict})" if verdict else "")
    if parent := tags.get(runs.PARENT_TAG):
        return f"a configuration of sweep run {parent}"
    if importer.DIGEST_TAG in tags:
        row = tags.get(importer.ROW_TAG, "?")
        return f"imported from {tags.get(importer.SOURCE_TAG, '?')} (row {row})"
    return "its experiment's baseline" if tags.get(baselines.BASELINE_TAG) == "true" else ""


def _settings(config_text: str | None, params: dict[str, str]) -> dict[str, str]:
    try:
        config = yaml.safe_load(config_text) if config_text else None
    except yaml.YAMLError:  # not a config the kit wrote: its params still say something
        config = None
    flat = (
        {k: shown(v) for k, v in flatten_tree(config).items()} if isinstance(config, dict) else {}
    )
    for key, value in params.items():
        if key in DATA_PARAMS or key in NOT_COMPARED or key == "class_counts":
            continue
        if key.startswith("run.") and key.removeprefix("run.") in flat:  # `seed` as run.seed
            continue
        flat.setdefault(key, shown(value))
    return dict(sorted(flat.items()))


def _patch(tags: dict[str, str], run_id: str, scratch: Path) -> str | None:
    dirty = tags.get(provenance.GIT_DIRTY)
    if dirty == "false":
        return "none (clean tree)"
    patch = _text_artifact(run_id, "uncommitted.patch", scratch) if dirty == "true" else None
    if patch is None:
        return None
    files = len(re.findall(r"(?m)^diff --git ", patch))
    return f"{files} files, sha256 {hashlib.sha256(patch.encode()).hexdigest()[:12]}"


def _code(tags: dict[str, str], run_id: str, scratch: Path) -> dict[str, str | None]:
    dirty = {"true": "dirty", "false": "clean"}.get(tags.get(provenance.GIT_DIRTY, ""))
    repository = tags.get(provenance.GIT_REPO_URL) or tags.get(provenance.SOURCE_NAME)
    values = {
        "commit": tags.get(provenance.GIT_COMMIT),
        "tree": dirty,
        "uncommitted.patch": _patch(tags, run_id, scratch),
        "branch": tags.get(provenance.GIT_BRANCH),
        "repository": repository,
    }
    return {key: None if value is None else shown(value) for key, value in values.items()}


def _sources(tags: dict[str, str]) -> tuple[str, ...]:
    """Where the run's code can be cloned from: its repository URL, its source folder."""
    location = tags.get(provenance.SOURCE_NAME, "").partition("#")[0]
    found = [tags.get(provenance.GIT_REPO_URL, ""), tags.get("mlflow.gitRepoURL", ""), location]
    return tuple(
        without_redacted_userinfo(s.removeprefix("file://")) for s in dict.fromkeys(found) if s
    )


def _balance(text: str | None) -> str | None:
    """`{"0": 212, "1": 357}` -> `0: 212 (37.3%), 1: 357 (62.7%)`."""
    try:
        counts = json.loads(text) if text else None
    except ValueError:
        return text
    if not isinstance(counts, dict) or not all(isinstance(n, int) for n in counts.values()):
        return text
    total = sum(counts.values()) or 1
    return ", ".join(f"{label}: {n} ({n / total:.1%})" for label, n in counts.items())


def _rows(run) -> str | None:
    for given in run.inputs.dataset_inputs if run.inputs else []:
        try:
            profile = json.loads(given.dataset.profile or "{}")
        except ValueError:
            continue
        if "num_rows" in profile:
            return str(profile["num_rows"])
    return None


def _data(run) -> dict[str, str | None]:
    params = run.data.params
    values = {shown_as: params.get(key) for key, shown_as in DATA_PARAMS.items()}
    values["rows"] = _rows(run)
    values["class balance"] = _balance(params.get("class_counts"))
    return {key: None if value is None else shown(value) for key, value in values.items()}


def _environment(text: str | None) -> dict[str, str] | None:
    """Python, the platform and the packages the run imports (every package for a
    record that does not say which: packages.py); the tools beside them change no result."""
    if text is None:
        return None
    recorded = packages.parse(text)
    imported = recorded.packages if recorded.runtime is None else recorded.runtime
    found = {"python": recorded.python} if recorded.python else {}
    found.update(
        {n: v for n, v in recorded.packages.items() if n in imported and n != packages.KIT}
    )
    for line in text.splitlines():
        if line.startswith("# platform "):
            found["platform"] = line.removeprefix("# platform ").strip()
    return {shown(name): shown(version) for name, version in found.items()}


def _metrics(run) -> tuple[dict[str, float], dict[str, dict[int, float]]]:
    """The run's single-valued metrics, and its folds by `cv_<m>`: the steps of
    `cv_<m>_per_fold` (earlier kits: the steps of `cv_<m>`, or `cv_<m>_fold_<k>` metrics
    where the run has no steps), so runs of any kit pair fold by fold."""
    metrics: dict[str, float] = {}
    folds: dict[str, dict[int, float]] = {}
    legacy: dict[str, dict[int, float]] = {}
    for key, value in runs.metrics_with_steps(run).items():
        if stepped := re.fullmatch(r"(.+)\[(\d+)\]", key):
            name = stepped.group(1).removesuffix(runs.FOLD_SUFFIX)
            folds.setdefault(name, {})[int(stepped.group(2))] = value
        elif old := LEGACY_FOLD.match(key):
            legacy.setdefault(old.group(1), {})[int(old.group(2))] = value
        else:
            metrics[key] = value
    return metrics, {**legacy, **folds}


def read_run(client: MlflowClient, run_id: str) -> RunFacts:
    """What run `run_id` recorded; RunNotFound for an unknown or deleted run."""
    run = _run(client, run_id)
    tags = run.data.tags
    metrics, folds = _metrics(run)
    with tempfile.TemporaryDirectory(prefix="logreg-compare-") as scratch_dir:
        scratch = Path(scratch_dir)
        config = _text_artifact(run_id, "config.yaml", scratch)
        environment = _text_artifact(run_id, "environment.txt", scratch / "environment")
        code = _code(tags, run_id, scratch / "patch")
    return RunFacts(
        run_id=run.info.run_id,
        name=shown(run.info.run_name or ""),
        experiment=shown(client.get_experiment(run.info.experiment_id).name),
        status=run.info.status,
        origin=shown(_origin(tags)),
        settings=_settings(config, run.data.params),
        code=code,
        sources=_sources(tags),
        data=_data(run),
        environment=_environment(environment),
        metrics=metrics,
        folds=folds,
    )


def baseline_for(client: MlflowClient, run_id: str) -> str:
    """The id of the baseline of `run_id`'s experiment (`baseline RUN_ID` marks it)."""
    run = _run(client, run_id)
    experiment = client.get_experiment(run.info.experiment_id).name
    if run.data.tags.get(baselines.BASELINE_TAG) == "true":
        raise KitError(
            f"run {run_id} is itself the baseline of experiment {experiment!r}; compare it "
            f"with another run (compare {run_id} OTHER_RUN_ID)"
        )
    found = baselines.baseline_of(run.info.experiment_id, run_id)
    if found is None:
        raise KitError(
            f"experiment {experiment!r} has no baseline; mark one with "
            "`python -m logistic_regression baseline RUN_ID`, or name the other run"
        )
    return found.info.run_id
