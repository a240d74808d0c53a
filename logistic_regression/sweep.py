"""Sweeps: every configuration of a Hydra multirun as a child of one parent MLflow run.

    python -m logistic_regression.train -m model.C=0.01,0.1,1,10 model.penalty=l1,l2
    python -m logistic_regression.train -m hydra/launcher=joblib hydra.launcher.n_jobs=2 ...
    mlflow run . -e sweep -P sweep="model.C=0.01,0.1,1,10 model.penalty=l1,l2"

The whole flow lives here. `SweepCallback` (registered in conf/config.yaml) opens the
parent run before the first job (or adopts the run `mlflow run -e sweep` made) and
exports its id in LOGREG_PARENT_RUN_ID, which reaches every job's process whatever the
launcher; `run_child` records each configuration as a child run tagged
`mlflow.parentRunId`. When the sweep ends the parent gets the best child
(`sweep.best_run_id`, its swept values, `best_<metric>`), the counts, and
`sweep_summary.html`. A failing child is FAILED with its reason; the sweep goes on.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from logistic_regression import background, notify, pipeline, provenance, report, sweep_summary
from logistic_regression.config import (
    PROJECT_DIR,
    SECRET_KEYS,
    Config,
    compose_config,
    public_config,
)
from logistic_regression.errors import KitError, first_line
from logistic_regression.storage.writer import ArtifactWriter
from logistic_regression.tracking import artifact_state, runs, sweeps
from logistic_regression.uris import absolute_tracking_uri, add_secret, hide_secret_settings, redact

SWEEP_TAG = "kit.sweep"
# How the parent's id reaches each configuration, in this process or a launcher's.
PARENT_VARIABLE = "LOGREG_PARENT_RUN_ID"


def parent_run_id() -> str | None:
    """The parent run of the sweep this process is a configuration of, if any."""
    return os.environ.get(PARENT_VARIABLE) or None


def run_hydra(args: list[str], task: Callable[[], Any]) -> int:
    """Hydra's full command line (--help, --cfg job, -m) through `task`, its decorated
    task function. After a multirun: exit code 1 when no configuration finished."""
    sys.argv = [sys.argv[0], *args]
    SweepCallback.outcomes.clear()
    try:
        task()
    except SystemExit as stop:  # Hydra reports its own errors, then exits
        _end_interrupted(f"the sweep stopped: exit code {stop.code}")
        raise
    outcomes = SweepCallback.outcomes
    return 1 if outcomes and not any(outcomes) else 0


def run_child(config: Config, parent: str) -> float:
    """One configuration of a sweep. Never raises: a failure is a FAILED child run with
    its reason, and the sweep goes on. Returns the sweep metric (for Optuna), NaN if none."""
    opened: list[str] = []
    try:
        summary = pipeline.run(config, parent_run_id=parent, on_open=opened.append)
    except Exception as exc:
        reason = redact(
            str(exc) if isinstance(exc, KitError) else f"{type(exc).__name__}: {first_line(exc)}"
        )
        print(f"error: {reason}", file=sys.stderr)
        if not opened:
            sweeps.record_failed_child(
                parent,
                pipeline.run_name(config),
                reason,
                runs.config_params(public_config(config)),
            )
        return float("nan")
    pipeline.print_summary(summary, os.environ.get("MLFLOW_TRACKING_URI") or config.tracking.uri)
    value = runs.metric_value(summary.run_id, config.sweep.metric)
    return float("nan") if value is None else value


def start_parent(config: Config) -> str:
    """The parent run of a sweep: the run `mlflow run -e sweep` made, else a new one.

    The background workers are forked first (serving every configuration run in this
    process), which lifts the thread limits before a launcher (joblib) starts processes
    that would inherit them."""
    background.shared_pool(report.warm_up)
    add_secret(config.notify.webhook_url)
    runs.use_tracking_uri(config.tracking)
    existing = runs.run_id_from_mlflow_run()
    if existing:
        return existing
    git = provenance.git_state(PROJECT_DIR)
    tags = provenance.tags(PROJECT_DIR, git, config.tracking.note)
    experiment = runs.experiment_id(
        config.tracking.experiment_name, pipeline.artifact_location(config)
    )
    return sweeps.start_parent(experiment, f"sweep-{time.strftime('%Y%m%d-%H%M%S')}", tags)


def finish(config: Config, parent_id: str, aborted: str = "") -> bool:
    """Best child, counts and the HTML summary on the parent, then its honest end.
    Returns True when at least one configuration finished."""
    metric, direction = config.sweep.metric, config.sweep.direction
    children = [
        sweep_summary.Child(
            run_id=child.info.run_id,
            name=child.info.run_name,
            status=child.info.status,
            params={k: v for k, v in child.data.params.items() if "." in k},
            value=child.data.metrics.get(metric),
            error=child.data.tags.get(runs.ERROR_TAG, ""),
        )
        for child in sweeps.child_runs(parent_id)
    ]
    html, best, swept = sweep_summary.render_summary(parent_id, children, metric, direction)
    failed = sum(child.status != "FINISHED" for child in children)
    tags = {
        SWEEP_TAG: "aborted" if aborted else "finished",
        "sweep.children": str(len(children)),
        "sweep.failed": str(failed),
        "sweep.metric": metric,
        "sweep.direction": direction,
        "sweep.parameters": ", ".join(swept),
    }
    if best is not None and best.value is not None:
        tags["sweep.best_run_id"] = best.run_id
        tags.update({f"sweep.best.{name}": best.params.get(name, "") for name in swept})
        runs.log_metrics(parent_id, [(f"best_{metric}", best.value, 0)])
    root = runs.artifact_uri(parent_id)
    tracking_uri = absolute_tracking_uri(runs.use_tracking_uri(config.tracking))
    with ArtifactWriter(parent_id, redact(tracking_uri), config.storage) as writer:
        folder = writer.scratch("summary")
        folder.mkdir()
        (folder / sweep_summary.FILE_NAME).write_text(html, encoding="utf-8")
        writer.adopt_folder(folder, root)
        stored = writer.flush()
    artifact_state.mark_artifacts(parent_id, stored.pending)
    if aborted:
        tags[runs.ERROR_TAG] = aborted
    elif best is None:
        tags[runs.ERROR_TAG] = f"all {len(children)} configurations failed"
    status = "FINISHED" if best is not None and not aborted else "FAILED"
    runs.end_run(parent_id, status, tags)
    notify.run_ended(config, parent_id, status, tags.get(runs.ERROR_TAG, ""))
    print(
        f"Sweep {parent_id}: {len(children)} configurations, {failed} failed"
        + (f"; best {metric} = {best.value:.4f} in run {best.run_id}" if best else "")
    )
    return best is not None


def typed_config(config: DictConfig) -> Config:
    """The kit's typed config from a callback's config (without Hydra's own section,
    whose per-job values do not exist yet at multirun start)."""
    kit_keys = [str(key) for key in config if key != "hydra"]
    kit = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.masked_copy(config, kit_keys))
    return OmegaConf.to_object(kit)  # type: ignore[return-value]


class SweepCallback(Callback):
    """Hydra callback: the parent run around a multirun."""

    # Whether each multirun of this process had a finished configuration (the exit code).
    outcomes: ClassVar[list[bool]] = []

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        parent_id = start_parent(typed_config(config))
        os.environ[PARENT_VARIABLE] = parent_id
        runs.log_tags(parent_id, {SWEEP_TAG: "running"})

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        redact_saved_config(config)
        parent_id = os.environ.pop(PARENT_VARIABLE, "")
        if not parent_id:
            return
        try:
            SweepCallback.outcomes.append(finish(typed_config(config), parent_id))
        except Exception as exc:  # Hydra would only warn: the parent must not stay RUNNING
            with runs.bounded_store():
                runs.fail_run(parent_id, f"summarising the sweep failed: {first_line(exc)}")
            SweepCallback.outcomes.append(False)
            raise


def redact_saved_config(config: DictConfig) -> None:
    """Hydra saves the sweep's config and command line as `<sweep dir>/multirun.yaml`,
    secrets included (a webhook URL from conf/local/default.yaml, a URI with a password
    given as an override): the file is rewritten with them hidden when the sweep ends."""
    with contextlib.suppress(Exception):  # Hydra's layout changed, or no file: nothing to hide
        saved = Path(str(config.hydra.sweep.dir)) / "multirun.yaml"
        text = saved.read_text()
        hidden = hide_secret_settings(text, SECRET_KEYS)
        if hidden != text:
            saved.write_text(hidden)


def _end_interrupted(reason: str) -> None:
    """A multirun that Hydra aborted (a bad override value) still ends its parent."""
    parent = os.environ.pop(PARENT_VARIABLE, "")
    if parent:
        finish(compose_config([]), parent, aborted=reason)


if __name__ == "__main__":  # the older spelling of `python -m logistic_regression sweep ...`
    from logistic_regression.__main__ import main

    sys.exit(main(["sweep", *sys.argv[1:]]))
