"""`inspect`: one run as a tree, or an experiment's runs as a table, on any backend.

`tree mlruns` only works where artifacts are local files; this reads the same facts
through MLflow's client, so it works on SQLite, a tracking server or S3 artifacts alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from logistic_regression import leaks
from logistic_regression.config import LOWER_IS_BETTER
from logistic_regression.errors import KitError, first_line
from logistic_regression.provenance import LEGACY_REPRODUCTION_OF, REPRODUCTION_OF
from logistic_regression.storage import s3
from logistic_regression.tracking import experiments
from logistic_regression.tracking.runs import WARNINGS_TAG

KEY_METRICS = ("cv_roc_auc_mean", "cv_roc_auc_std", "test_roc_auc", "test_accuracy")


def human_size(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _artifact_lines(
    client: MlflowClient, run_id: str, path: str | None, indent: str
) -> Iterator[str]:
    entries = client.list_artifacts(run_id, path)
    for index, entry in enumerate(entries):
        last = index == len(entries) - 1
        branch, child_indent = ("└── ", "    ") if last else ("├── ", "│   ")
        name = entry.path.rsplit("/", 1)[-1]
        if entry.is_dir:
            yield f"{indent}{branch}{name}/"
            yield from _artifact_lines(client, run_id, entry.path, indent + child_indent)
        else:
            yield f"{indent}{branch}{name}  ({human_size(entry.file_size)})"


def _section(title: str, items: Mapping[str, object], last: bool) -> Iterator[str]:
    branch, indent = ("└── ", "    ") if last else ("├── ", "│   ")
    yield f"{branch}{title} ({len(items)})"
    keys = sorted(items)
    for index, key in enumerate(keys):
        mark = "└── " if index == len(keys) - 1 else "├── "
        yield f"{indent}{mark}{key} = {items[key]}"


def run_tree(run_id: str, client: MlflowClient | None = None) -> str:
    client = client or MlflowClient()
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise KitError(f"no run with id {run_id!r} in this tracking store") from None
    experiment = client.get_experiment(run.info.experiment_id)
    lines = [
        f"run {run.info.run_id}  {run.info.run_name}  {run.info.status}  "
        f"(experiment {experiment.name!r}, id {experiment.experiment_id})"
    ]
    lines += _section("params", run.data.params, last=False)
    lines += _section("metrics", run.data.metrics, last=False)
    lines += _section("tags", run.data.tags, last=False)
    models = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
    )
    lines.append(f"├── models ({len(models)})")
    for index, logged in enumerate(models):
        mark = "└── " if index == len(models) - 1 else "├── "
        lines.append(f"│   {mark}{logged.name}  {logged.model_id}  {logged.artifact_location}")
    lines.append(f"└── artifacts  {run.info.artifact_uri}")
    lines += _listed(client, run_id, run.info.artifact_uri)
    return "\n".join(lines)


def _listed(client: MlflowClient, run_id: str, root: str) -> list[str]:
    """The run's artifact tree; one line when S3 cannot be read (no credentials, no
    endpoint), not boto3's NoCredentialsError as a bug of the kit."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return list(_artifact_lines(client, run_id, None, "    "))
    except (BotoCoreError, ClientError) as exc:
        raise s3.unreadable(root, exc) from None


def _experiment(name: str, client: MlflowClient):
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        known = ", ".join(repr(e.name) for e in client.search_experiments()) or "none"
        raise KitError(f"no experiment named {name!r}; experiments here: {known}")
    return experiments.active(experiment)  # a deleted one's runs are hidden: say so


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]


# The most runs one MLflow search returns (its max_results limit).
MAX_TOP = 50_000

BEST_PARAMS = ("model.C", "model.penalty", "model.solver", "model.l1_ratio")


def _best_param(params: Mapping[str, str], name: str) -> str:
    """A parameter as `best` lists it: `-` where the run lacks it, and for l1_ratio
    where its penalty ignores it (only elasticnet mixes l1 and l2)."""
    if name == "model.l1_ratio" and params.get("model.penalty") != "elasticnet":
        return "-"
    return params.get(name, "-")


def _unknown_metric_hint(metric: str, experiment, client: MlflowClient) -> str:
    """When no run of the experiment has `metric` at all: say so, with names that exist."""
    ids = [experiment.experiment_id]
    if client.search_runs(ids, filter_string=f"metrics.`{metric}` > -1e308", max_results=1):
        return ""
    known = sorted(
        {name for run in client.search_runs(ids, max_results=20) for name in run.data.metrics}
    )
    if not known:
        return f"; no run of it has any metric (and none is named {metric!r})"
    shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
    return f"; no run of it has a metric named {metric!r} (metrics there: {shown})"


def best_runs(
    metric: str,
    experiment_name: str,
    filter_string: str = "",
    top: int = 5,
    client: MlflowClient | None = None,
    include_reproductions: bool = False,
) -> str:
    """The top finished runs by `metric` (lowest first for log loss), through MLflow's own
    search: `filter_string` is MLflow's filter syntax, e.g. `params.model.penalty = 'l2'`.
    Runs made by `reproduce` (tagged `kit.reproduction_of`) repeat another run's result
    and are left out unless `include_reproductions`."""
    client = client or MlflowClient()
    if not 1 <= top <= MAX_TOP:
        raise KitError(f"--top={top} is not allowed; it must be from 1 to {MAX_TOP}")
    if not re.fullmatch(r"[A-Za-z0-9_.\-/ ]+", metric):
        raise KitError(f"--metric={metric!r} is not a metric name")
    experiment = _experiment(experiment_name, client)
    lowest = any(name in metric for name in LOWER_IS_BETTER)
    conditions = [f"metrics.`{metric}` > -1e308", "attributes.status = 'FINISHED'"]
    if not include_reproductions:
        conditions += [f"tags.`{tag}` IS NULL" for tag in (REPRODUCTION_OF, LEGACY_REPRODUCTION_OF)]
    if filter_string.strip():
        conditions.insert(0, filter_string.strip())
    try:
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=" and ".join(conditions),
            order_by=[f"metrics.`{metric}` {'ASC' if lowest else 'DESC'}"],
            max_results=top,
        )
    except MlflowException as exc:
        raise KitError(f"--filter={filter_string!r} was refused: {first_line(exc)}") from None
    order = "lowest" if lowest else "highest"
    lines = [f"best {len(runs)} runs of {experiment_name!r} by {metric} ({order} first)"]
    if not runs:
        return lines[0] + ": none match" + _unknown_metric_hint(metric, experiment, client)
    header = ["rank", "run_id", "name", metric, *BEST_PARAMS, "warning"]
    rows = [
        [
            str(rank),
            run.info.run_id,
            run.info.run_name or "",
            f"{run.data.metrics[metric]:.6f}",
            *(_best_param(run.data.params, name) for name in BEST_PARAMS),
            LEAK_WARNING if leaks.MARK in run.data.tags.get(WARNINGS_TAG, "") else "",
        ]
        for rank, run in enumerate(runs, start=1)
    ]
    if not any(row[-1] for row in rows):  # the column only when a run needs it
        return "\n".join(lines + _table(header[:-1], [row[:-1] for row in rows]))
    note = f"{LEAK_WARNING}: one column alone gives the target away (see the run's kit.warnings)"
    return "\n".join([*lines, *_table(header, rows), note])


LEAK_WARNING = "leak?"


# Runs asked for per search: MLflow returns at most this many at a time (and 1,000 when
# not told), so the table pages through all of them.
PAGE = 1000


def every_run(client: MlflowClient, experiment_id: str) -> list:
    """Every run of the experiment, newest first, however many pages it takes."""
    found: list = []
    token: str | None = None
    while True:
        page = client.search_runs(
            [experiment_id],
            order_by=["attributes.start_time DESC"],
            max_results=PAGE,
            page_token=token,
        )
        found.extend(page)
        token = page.token
        if not token:
            return found


def experiment_table(name: str, client: MlflowClient | None = None) -> str:
    client = client or MlflowClient()
    experiment = _experiment(name, client)
    runs = every_run(client, experiment.experiment_id)
    header = ["run_id", "name", "status", *KEY_METRICS]
    rows = [
        [
            run.info.run_id,
            run.info.run_name or "",
            run.info.status,
            *(f"{run.data.metrics[m]:.4f}" if m in run.data.metrics else "-" for m in KEY_METRICS),
        ]
        for run in runs
    ]
    lines = [f"experiment {name!r} (id {experiment.experiment_id}): {len(runs)} runs"]
    return "\n".join(lines + _table(header, rows))
