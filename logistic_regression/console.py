"""What a run prints on the terminal: its summary, one line among a sweep's, where to
look at it, and the notes that come before it (runs left behind, another experiment).
Everything is redacted: a tracking URI may hold a password."""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from logistic_regression.config import Config
from logistic_regression.storage import abandoned
from logistic_regression.tracking import runs, store
from logistic_regression.uris import absolute_tracking_uri, redact


@dataclass(frozen=True)
class RunSummary:
    """What the console prints when a run finished."""

    run_id: str
    run_name: str
    headline: str
    cv_mean: float
    cv_std: float
    test_value: float
    report_uri: str
    output_path: str
    tracking_uri: str  # the store the run is in (where to look at it)


@functools.cache
def warn_abandoned(spool_folder: Path, tracking_uri: str) -> None:
    """Once per process and store: one line on stderr when runs of this tracking store
    lost their process before their artifacts were settled (`sync` handles them)."""
    line = abandoned.abandoned_notice(spool_folder, tracking_uri)
    if line:
        print(line, file=sys.stderr)


def warn_other_experiment(config: Config, experiment_id: str) -> None:
    """One line when `mlflow run` put the run outside the kit's experiment without being
    asked to (`mlflow run <git-url>` from another folder lands in "Default"): `best`,
    `inspect` and baselines look in the kit's experiment."""
    if not runs.run_id_from_mlflow_run():
        return
    if os.environ.get("MLFLOW_EXPERIMENT_NAME") or experiment_id != runs.DEFAULT_EXPERIMENT_ID:
        return  # the user chose it (--experiment-name/-id 0 cannot be told apart; rare)
    wanted = config.tracking.experiment_name
    if runs.experiment_name(experiment_id) == wanted:
        return
    print(
        f"note: mlflow run recorded this run in the experiment 'Default', not {wanted!r} "
        f"where best, inspect and baselines look; add --experiment-name {wanted} "
        "(or run from a checkout of the kit)",
        file=sys.stderr,
    )


def note_new_store_here(raw_uri: str, project_dir: Path) -> None:
    """One line when a relative SQLite store (the default `sqlite:///mlflow.db`) is about
    to be made in a subfolder of the checkout (`cd docs && python -m ...train`): a second
    store, with its own mlruns/ and outputs/, where the user would not look for runs."""
    path = store.sqlite_path(raw_uri)
    if path is None or path.is_absolute() or path.exists():
        return
    here, root = Path.cwd().resolve(), project_dir.resolve()
    if here == root or root not in here.parents:
        return
    print(
        f"note: making a new tracking store {here / path} in this subfolder of the checkout; "
        f"the checkout's store is {root / path}: run from {root}, or set "
        f"MLFLOW_TRACKING_URI=sqlite:///{root / path}",
        file=sys.stderr,
    )


def print_summary(summary: RunSummary) -> None:
    print(f"Run {summary.run_id} ({summary.run_name}) finished")
    print(f"  CV {summary.headline}: {summary.cv_mean:.4f} ± {summary.cv_std:.4f}")
    print(f"  test {summary.headline}: {summary.test_value:.4f}")
    print(f"  report: {summary.report_uri}")
    print(f"  predictions: {summary.output_path}")
    print(f"  UI: {ui_hint(summary.tracking_uri)}")


def summary_line(summary: RunSummary) -> str:
    """One line for a run among many (a sweep's configuration)."""
    return (
        f"{summary.run_name} ({summary.run_id}): CV {summary.headline} "
        f"{summary.cv_mean:.4f} ± {summary.cv_std:.4f}, test {summary.test_value:.4f}, FINISHED"
    )


def ui_url(tracking_uri: str) -> str | None:
    """The MLflow UI's address when the runs are on a tracking server (it serves the UI
    too), else None: a local store has no UI until someone starts one."""
    if tracking_uri.startswith(("http://", "https://")):
        return redact(tracking_uri)
    return None


def ui_hint(tracking_uri: str) -> str:
    """Where to look at the runs: the server's address, or the command that opens the UI on
    a local store (the same however the run was started: the path is made absolute)."""
    url = ui_url(tracking_uri)
    if url is not None:
        return url
    store = absolute_tracking_uri(tracking_uri)
    # MLflow's UI refuses a file store (its "maintenance mode") unless this is set
    file_store = urlparse(store).scheme in ("", "file")
    allow = "MLFLOW_ALLOW_FILE_STORE=true " if file_store else ""
    return f"{allow}mlflow ui --backend-store-uri {redact(store)}"


@dataclass(frozen=True)
class SweepEnd:
    """What the end of a sweep prints: its counts, best child so far, where to look."""

    parent_id: str
    configurations: int
    failed: int
    reused: int
    stopped: bool  # ended early (a signal, an error): it can be resumed
    best: tuple[str, float, str] | None  # (metric, value, run id)
    best_report: str | None
    summary: str
    tracking_uri: str


def print_sweep_end(end: SweepEnd) -> None:
    count = f"{end.configurations} configuration{'' if end.configurations == 1 else 's'}"
    head = f"Sweep {end.parent_id}" + (
        f" stopped: {count} recorded" if end.stopped else f": {count}"
    )
    line = head + f", {end.failed} failed" + (f", {end.reused} reused" if end.reused else "")
    if end.best is not None:
        metric, value, run_id = end.best
        line += f"; best {'so far ' if end.stopped else ''}{metric} = {value:.4f} in run {run_id}"
    print(line)
    if end.best_report:
        print(f"  best report: {end.best_report}")
    print(f"  summary: {end.summary}")
    print(f"  UI: {ui_hint(end.tracking_uri)}")
    if end.stopped:
        print(f"  resume it: add sweep.resume={end.parent_id} to the sweep's own overrides")
