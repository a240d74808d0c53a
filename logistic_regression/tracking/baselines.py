"""One baseline run per experiment; later runs log how they compare with it."""

from __future__ import annotations

from collections.abc import Mapping

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from logistic_regression.config import KEY_METRICS
from logistic_regression.errors import KitError
from logistic_regression.provenance import reproduction_of
from logistic_regression.status import Status
from logistic_regression.tracking.runs import log_metrics, log_tags

BASELINE_TAG = "kit.baseline"
BASELINE_RUN_TAG = "kit.baseline_run_id"
# Metrics that compare a run with its experiment's baseline: context, not a property of
# the run's own model or data (`reproduce` shows them and never decides on them).
COMPARISON_PREFIX = "vs_baseline_"


def mark_baseline(run_id: str, allow_reproduction: bool = False) -> str:
    """Make `run_id` its experiment's one baseline (the tag moves off any earlier one).
    A reproduction of another run is refused unless `allow_reproduction`: the run it
    reproduces is the one to compare with. Returns the experiment's name."""
    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise KitError(f"no run with id {run_id!r} in this tracking store") from None
    if run.info.lifecycle_stage == "deleted":  # MLflow refuses tags on it
        raise KitError(
            f"run {run_id} is deleted; restore it with `mlflow runs restore --run-id {run_id}` "
            "against this tracking store, or mark another run"
        )
    if run.info.status != Status.FINISHED:
        raise KitError(f"run {run_id} is {run.info.status}; only a FINISHED run can be a baseline")
    original = reproduction_of(run.data.tags)
    if original and not allow_reproduction:
        raise KitError(
            f"run {run_id} is a reproduction of run {original}; mark that run as the baseline "
            "(or pass --allow-reproduction to mark this one)"
        )
    experiment = run.info.experiment_id
    for other in client.search_runs([experiment], filter_string=f"tags.`{BASELINE_TAG}` = 'true'"):
        if other.info.run_id != run_id:
            client.delete_tag(other.info.run_id, BASELINE_TAG)
    client.set_tag(run_id, BASELINE_TAG, "true")
    return client.get_experiment(experiment).name


def baseline_of(experiment_id: str, run_id: str):
    """The experiment's baseline run (not `run_id` itself), or None."""
    found = MlflowClient().search_runs(
        [experiment_id], filter_string=f"tags.`{BASELINE_TAG}` = 'true'", max_results=2
    )
    return next((run for run in found if run.info.run_id != run_id), None)


OTHER_DATA_TAG = "kit.baseline_not_compared"


def compare_with_baseline(
    run_id: str, metrics: Mapping[str, float], input_digest: str = ""
) -> dict | None:
    """Log `vs_baseline_<metric>_diff` and `_ratio` for the key metrics and tag the run
    with the baseline's id; returns what the report shows (None without a baseline).
    A baseline trained on other data (another input digest) is not compared with: its
    scores say nothing of this run's; the run is tagged with why (`OTHER_DATA_TAG`)."""
    experiment = MlflowClient().get_run(run_id).info.experiment_id
    baseline = baseline_of(experiment, run_id)
    if baseline is None:
        return None
    theirs = baseline.data.params.get("input_digest", "")
    if input_digest and theirs and theirs != input_digest:
        note = (
            f"the baseline {baseline.info.run_id} ({baseline.info.run_name}) was trained on "
            f"other data ({baseline.data.params.get('input_path', '?')}), so this run is not "
            "compared with it"
        )
        log_tags(run_id, {OTHER_DATA_TAG: note})
        return {"run_id": baseline.info.run_id, "run_name": baseline.info.run_name,
                "rows": [], "note": note}  # fmt: skip
    rows, records = [], []
    for name in KEY_METRICS:
        if name not in metrics or name not in baseline.data.metrics:
            continue
        value, reference = metrics[name], baseline.data.metrics[name]
        ratio = value / reference if reference else None
        rows.append(
            {
                "metric": name,
                "value": value,
                "baseline": reference,
                "diff": value - reference,
                "ratio": ratio,
            }
        )
        records.append((f"{COMPARISON_PREFIX}{name}_diff", value - reference, 0))
        if ratio is not None:
            records.append((f"{COMPARISON_PREFIX}{name}_ratio", ratio, 0))
    log_metrics(run_id, records)
    log_tags(run_id, {BASELINE_RUN_TAG: baseline.info.run_id})
    return {"run_id": baseline.info.run_id, "run_name": baseline.info.run_name, "rows": rows}
