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
`sweep.resume=<parent run id>` resumes an earlier sweep under its parent, its finished
configurations reused (`sweep_resume.py`).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from logistic_regression import (
    background,
    console,
    environment,
    hydra_flags,
    notify,
    pipeline,
    preflight,
    provenance,
    report,
    sweep_resume,
    sweep_summary,
    uris,
)
from logistic_regression.config import (
    PROJECT_DIR,
    SECRET_KEYS,
    Config,
    compose_config,
    experiment_artifact_location,
    public_config,
    to_object,
    typed_config,
)
from logistic_regression.config_errors import one_line
from logistic_regression.config_keys import refuse_deletions
from logistic_regression.errors import ConfigError, Interrupted, KitError, first_line
from logistic_regression.status import Status
from logistic_regression.storage.uploader import local_root
from logistic_regression.storage.writer import ArtifactWriter
from logistic_regression.tracking import artifact_state, models, runs, store, sweeps
from logistic_regression.tracking.sweeps import SWEEP_TAG
from logistic_regression.uris import absolute_tracking_uri, add_secret, hide_secret_settings, redact
from logistic_regression.validation import validate


def run_hydra(args: list[str], task: Callable[[], Any]) -> int:
    """Hydra's full command line (--help, --cfg job, -m) through `task`, its decorated
    task function. After a multirun: exit code 1 when no configuration finished.

    What can be refused is refused before Hydra starts, so before a sweep's parent run
    exists (`refuse_early`); Hydra's own errors after that are one line too (ConfigError)."""
    refuse_early(args)
    SweepCallback.outcomes.clear()
    SweepCallback.sweep_dir = None
    try:
        # Hydra raises its errors (the kit prints them as one line)
        with environment.hydra_command_line(args), environment.hydra_raises_errors():
            task()
    except (HydraException, OmegaConfBaseException) as exc:
        _end_interrupted(f"the sweep stopped: {one_line(exc, Config)}")
        raise ConfigError(one_line(exc, Config)) from exc
    except SystemExit as stop:  # a single run started with a flag ends with its exit code
        _end_interrupted(f"the sweep stopped: exit code {stop.code}")
        raise
    except Interrupted as exc:  # the configuration running is KILLED already
        _end_interrupted(str(exc), Status.KILLED)
        raise
    except Exception as exc:  # a bug: the parent still ends (cli.guarded reports it)
        _end_interrupted(f"the sweep stopped: {type(exc).__name__}: {first_line(exc)}")
        raise
    finally:  # however the sweep ended (a signal, an error): its saved config redacted
        if SweepCallback.sweep_dir is not None:
            redact_saved_config(SweepCallback.sweep_dir)
    outcomes = SweepCallback.outcomes
    return 1 if outcomes and not any(outcomes) else 0


def refuse_early(args: list[str]) -> None:
    """Hydra's command line parsed (a bad flag is one line, not Hydra's usage text); for a
    multirun, every configuration it enumerates checked and the tracking store asked, so
    a sweep that could not run one configuration, or whose store does not answer, is
    refused before its parent run exists. A sweep with some bad configurations runs: those
    become FAILED children. Sweeps that cannot be listed here (another sweeper such as
    Optuna, intervals, config group choices, `+key`/`~key`) are checked when each
    configuration runs."""
    parsed = hydra_flags.parse(args)
    refuse_deletions(parsed.overrides)
    modes = [parsed.run, parsed.multirun, parsed.cfg is not None, parsed.info is not None]
    if sum(modes) + parsed.shell_completion > 1:
        raise ConfigError(
            "only one of --run, --multirun, --cfg, --info and --shell-completion can be given"
        )
    shows_only = parsed.cfg or parsed.help or parsed.hydra_help or parsed.info
    elsewhere = parsed.config_path or parsed.config_name or parsed.config_dir
    if not parsed.multirun or shows_only or parsed.shell_completion or elsewhere:
        return
    if "hydra/launcher=ray" in parsed.overrides:
        from logistic_regression.ray_launcher import check_early

        check_early(parsed.overrides)
    base, configurations = sweep_configurations(parsed.overrides)
    if configurations:
        problems = []
        for configuration in configurations:
            try:
                validate(configuration)
            except ConfigError as exc:
                problems.append(exc)
        if len(problems) == len(configurations):
            raise problems[0]
    tracking_uri = absolute_tracking_uri(runs.use_tracking_uri(base.tracking))
    store.check(tracking_uri, base.tracking.timeout_s)
    if base.sweep.resume:  # the sweep it resumes checked too (sweep_resume.py)
        sweep_resume.check(base, configurations, tracking_uri)


# Beyond this many configurations a sweep is not enumerated up front.
MAX_CHECKED_CONFIGURATIONS = 10_000


def sweep_configurations(overrides: list[str]) -> tuple[Config, list[Config]]:
    """The config without the swept values, and every configuration of the sweep (empty
    when it cannot be enumerated here). A value of the wrong type is a ConfigError."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import QuotedString

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise ConfigError(one_line(exc, Config)) from exc
    kit = [override for override in parsed if not override.is_hydra_override()]
    base = compose_config([str(o.input_line) for o in kit if not o.is_sweep_override()])
    if any(o.key_or_group.startswith(("hydra/sweeper", "hydra.sweeper")) for o in parsed):
        return base, []  # another sweeper (Optuna) chooses the configurations itself
    tree = OmegaConf.structured(base)
    swept: list[tuple[str, list[Any]]] = []
    for override in (o for o in kit if o.is_sweep_override()):
        key = override.key_or_group
        plain = override.get_key_element() == key and override.package is None
        if not plain or OmegaConf.is_config(OmegaConf.select(tree, key, default=None)):
            return base, []
        try:
            values = list(override.sweep_iterator())
        except HydraException:  # an interval: Optuna's to sample
            return base, []
        swept.append((key, [v.text if isinstance(v, QuotedString) else v for v in values]))
    if math.prod(len(values) for _, values in swept) > MAX_CHECKED_CONFIGURATIONS:
        return base, []
    configurations = []
    for combination in itertools.product(*(values for _, values in swept)):
        one = copy.deepcopy(tree)
        for (key, _), value in zip(swept, combination, strict=True):
            try:
                OmegaConf.update(one, key, value, merge=False)
            except OmegaConfBaseException as exc:
                raise ConfigError(f"{key}={value!r} in the sweep: {one_line(exc, Config)}") from exc
        configurations.append(to_object(one))
    return base, configurations


def run_child(config: Config, parent: str) -> float:
    """One configuration of a sweep. Never raises: a failure is a FAILED child run with
    its reason, and the sweep goes on. Returns the sweep metric (for Optuna), NaN if none."""
    opened: list[str] = []
    try:
        reused = sweep_resume.reused(config, parent)  # a resumed sweep's finished ones
        if reused is not None:
            return reused
        summary = pipeline.run(config, parent_run_id=parent, on_open=opened.append)
    except Exception as exc:
        reason = redact(
            str(exc) if isinstance(exc, KitError) else f"{type(exc).__name__}: {first_line(exc)}"
        )
        print(f"{preflight.run_name(config)}: FAILED: {reason}", file=sys.stderr)
        if not opened:
            sweeps.record_failed_child(
                parent,
                preflight.run_name(config),
                reason,
                runs.config_params(public_config(config)),
            )
        return float("nan")
    print(console.summary_line(summary))  # the sweep's summary block comes once, at its end
    value = runs.metric_value(summary.run_id, config.sweep.metric)
    return float("nan") if value is None else value


def start_parent(config: Config, name: str = "") -> str:
    """The parent run of a sweep, named `name` (what was swept): the run `mlflow run -e
    sweep` made, else a new one.

    The background workers are forked first (serving every configuration run in this
    process), which lifts the thread limits before a launcher (joblib) starts processes
    that would inherit them."""
    background.shared_pool(report.warm_up, models.warm_up)
    add_secret(config.notify.webhook_url)
    runs.use_tracking_uri(config.tracking)
    existing = runs.run_id_from_mlflow_run()
    if config.sweep.resume:  # checked before Hydra started (refuse_early)
        return sweep_resume.reopen(config.sweep.resume, existing, name)
    name = name or f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    if existing:
        runs.rename(existing, name)
        return existing
    git = provenance.git_state(PROJECT_DIR)
    tags = provenance.tags(PROJECT_DIR, git, config.tracking.note)
    experiment = runs.experiment_id(
        config.tracking.experiment_name, experiment_artifact_location(config)
    )
    return sweeps.start_parent(experiment, name, tags)


# A sweep's name lists what it sweeps, cut to what the UI shows in its run list.
MAX_NAME = 90


def sweep_name(task_overrides: list[str]) -> str:
    """`sweep model.C=0.1,1 model.penalty=l1,l2`: the overrides with several values (a
    list, a range, a choice); empty when there are none (an Optuna search space)."""
    swept = [o for o in task_overrides if "," in o or "range(" in o or "choice(" in o]
    if not swept:
        return ""
    name = "sweep " + " ".join(swept)
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 3] + "..."


def finish(
    config: Config, parent_id: str, aborted: str = "", aborted_status: str = Status.FAILED
) -> bool:
    """Best child, counts and the HTML summary on the parent, then its honest end
    (`aborted_status` when `aborted` says why the sweep stopped early).
    Returns True when at least one configuration finished."""
    metric, direction = config.sweep.metric, config.sweep.direction
    children = sweep_resume.summary_children(parent_id, metric)  # each configuration once
    tracking_uri = absolute_tracking_uri(runs.use_tracking_uri(config.tracking))
    html, best, swept = sweep_summary.render_summary(
        parent_id,
        children,
        metric,
        direction,
        title=runs.run_name(parent_id),
        ui_url=console.ui_url(tracking_uri),
    )
    failed = sum(child.status != Status.FINISHED for child in children)
    reused = sum(child.reused for child in children)
    tags = {
        SWEEP_TAG: "aborted" if aborted else "finished",
        "sweep.children": str(len(children)),
        "sweep.failed": str(failed),
        "sweep.reused": str(reused),
        "sweep.metric": metric,
        "sweep.direction": direction,
    }
    if swept:  # what varied among the recorded children (none when one was recorded)
        tags["sweep.parameters"] = ", ".join(swept)
    if best is not None and best.value is not None:
        tags["sweep.best_run_id"] = best.run_id
        sweeps.mark_best(parent_id, best.run_id)  # kit.sweep_best, on this child alone
        tags[provenance.NOTE] = best_note(parent_id, best.run_id, best.name, metric, best.value)
        tags.update({f"sweep.best.{name}": best.params.get(name, "") for name in swept})
        runs.log_metrics(parent_id, [(f"best_{metric}", best.value, 0)])
    root = runs.artifact_uri(parent_id)
    journal_uri = redact(uris.store_uri(tracking_uri))  # the form every journal records
    local_only = local_root(root) is not None
    with ArtifactWriter(parent_id, journal_uri, config.storage, local_only=local_only) as writer:
        summary = {sweep_summary.FILE_NAME: html.encode("utf-8")}
        writer.put_bytes(summary, root, "the sweep summary", "summary")
        stored = writer.flush()
    artifact_state.mark_artifacts(parent_id, stored.pending)
    if aborted:
        tags[runs.ERROR_TAG] = aborted
    elif best is None:
        tags[runs.ERROR_TAG] = f"all {len(children)} configurations failed"
    status = aborted_status if aborted else Status.FINISHED if best is not None else Status.FAILED
    runs.end_run(parent_id, status, tags)
    notify.run_ended(config, tracking_uri, parent_id, status, tags.get(runs.ERROR_TAG, ""))
    console.print_sweep_end(
        console.SweepEnd(
            parent_id=parent_id,
            configurations=len(children),
            failed=failed,
            reused=reused,
            stopped=bool(aborted),
            best=None if best is None or best.value is None else (metric, best.value, best.run_id),
            best_report=None if best is None else f"{runs.artifact_uri(best.run_id)}/report.html",
            summary=f"{root}/{sweep_summary.FILE_NAME}",
            tracking_uri=tracking_uri,
        )
    )
    return best is not None


def best_note(parent_id: str, best_id: str, name: str, metric: str, value: float) -> str:
    """The parent's description (its note, then a link the MLflow UI follows to the
    best configuration's run)."""
    note = runs.run_note(parent_id)
    experiment = runs.experiment_of(best_id)
    link = f"[{name}](#/experiments/{experiment}/runs/{best_id})"
    return (note + "\n\n" if note else "") + f"Best configuration: {link}, {metric} = {value:.4f}"


class SweepCallback(Callback):
    """Hydra callback: the parent run around a multirun."""

    # Whether each multirun of this process had a finished configuration (the exit code).
    outcomes: ClassVar[list[bool]] = []
    # The sweep's own config (its store, its storage), for ending it early.
    started: ClassVar[Config | None] = None
    # Where Hydra saves the sweep's multirun.yaml (this process's sweep).
    sweep_dir: ClassVar[str | None] = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        task = list(OmegaConf.select(config, "hydra.overrides.task", default=[]) or [])
        SweepCallback.started = typed_config(config)
        SweepCallback.sweep_dir = str(config.hydra.sweep.dir)
        parent_id = start_parent(SweepCallback.started, sweep_name([str(o) for o in task]))
        environment.announce_parent(parent_id)
        sweep_resume.mark_running(parent_id)  # SWEEP_TAG, and which process runs it

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra has just saved multirun.yaml (the sweeper does, before its first job):
        # hidden now, not only at the end, which a SIGKILL never reaches.
        with contextlib.suppress(Exception):  # a job on another machine: no such file
            redact_saved_config(SweepCallback.sweep_dir or str(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        redact_saved_config(str(config.hydra.sweep.dir))
        parent_id = environment.take_parent()
        if not parent_id:
            return
        try:
            SweepCallback.outcomes.append(finish(typed_config(config), parent_id))
        except Exception as exc:  # Hydra would only warn: the parent must not stay RUNNING
            with runs.bounded_store():
                runs.fail_run(parent_id, f"summarising the sweep failed: {first_line(exc)}")
            SweepCallback.outcomes.append(False)
            raise


def redact_saved_config(sweep_dir: str) -> None:
    """Hydra saves the sweep's config and command line as `<sweep dir>/multirun.yaml`,
    secrets included (a webhook URL from conf/local/default.yaml, a URI with a password
    or a `+...password=` given as an override): the file is rewritten with them hidden
    as soon as the first configuration starts, and again when the sweep ends however it
    ends. Idempotent."""
    with contextlib.suppress(Exception):  # Hydra's layout changed, or no file: nothing to hide
        saved = Path(sweep_dir) / "multirun.yaml"
        text = saved.read_text()
        hidden = hide_secret_settings(text, SECRET_KEYS)
        if hidden != text:
            saved.write_text(hidden)


def _end_interrupted(reason: str, status: str = Status.FAILED) -> None:
    """A multirun that Hydra aborted (a bad override value) or a signal stopped still
    ends its parent."""
    parent = environment.take_parent()
    if not parent:
        return
    config = SweepCallback.started or compose_config([])
    try:
        with runs.bounded_store():
            finish(config, parent, aborted=reason, aborted_status=status)
    except Exception as exc:  # the summary failed: the parent still must not stay RUNNING
        with contextlib.suppress(Exception), runs.bounded_store():
            runs.fail_run(parent, f"{reason}; summarising failed: {first_line(exc)}", status)


if __name__ == "__main__":  # an older spelling: say the one that works, never run silently
    print(
        'error: use `python -m logistic_regression sweep "<overrides>"` '
        "(or `python -m logistic_regression.train -m ...`) to run a sweep",
        file=sys.stderr,
    )
    sys.exit(2)
