"""Resuming an interrupted sweep: `-m sweep.resume=<parent run id> <the sweep's overrides>`.

    check            (from `sweep.refuse_early`, before any work) the parent is a run of
                     this store, a sweep's parent, in this sweep's experiment, not still
                     running, recorded at this commit and on this data; each refusal is
                     one line (`ResumeRefused`)
    reopen           the parent RUNNING again; the error and the best-configuration line
                     an earlier end left on it go
    reused           a configuration with a FINISHED child recorded from the same
                     resolved config (its params), at the same commit and on data of the
                     same digest is not run again: the sweep takes that child's result
    summary_children each configuration counted once in the summary: its FINISHED child
                     if any, else its latest (the others are tagged `kit.superseded_by`);
                     children from before the resume are marked reused

Plain functions; MLflow is reached through `tracking/` only.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict

from mlflow.entities import Run

from logistic_regression import __version__, data, preflight, provenance
from logistic_regression.config import PROJECT_DIR, Config
from logistic_regression.errors import ConfigError, KitError
from logistic_regression.formats import read_options
from logistic_regression.launcher import stat_fields
from logistic_regression.status import Status
from logistic_regression.storage.spool import process_alive
from logistic_regression.sweep_summary import Child, companions
from logistic_regression.tracking import runs, sweeps
from logistic_regression.uris import redact


class ResumeRefused(ConfigError):
    """`sweep.resume` names a run this sweep cannot resume."""


# On the parent: the process running the sweep (`<host> <pid> <start time>`), how many
# times it was resumed and when the latest resume began (ms since the epoch).
PROCESS_TAG = "kit.sweep_process"
RESUMED_TAG = "sweep.resumed"
RESUMED_AT_TAG = "sweep.resumed_at"
# On a child whose configuration ran again: the child that counts for it now.
SUPERSEDED_TAG = "kit.superseded_by"
# On the run `mlflow run -e sweep -P resume=<id>` made: the sweep it resumed.
RESUMES_TAG = "kit.sweep_resumes"
# The sweep's own settings (what it ranks by, which sweep it resumes) are no part of
# what a configuration trains: left out when configurations are compared.
SWEEP_SECTION = "sweep."
BEST_LINE = "Best configuration: "  # how `sweep.best_note` starts its line
BEST_VALUES = "sweep.best."  # the best child's swept values, `sweep.best.<param>`


def check(config: Config, configurations: list[Config], tracking_uri: str) -> None:
    """Refuse, in one line, a `sweep.resume` this sweep cannot resume."""
    parent_id = config.sweep.resume
    what = f"sweep.resume={parent_id}"
    parent = sweeps.find_run(parent_id)
    if parent is None:
        raise ResumeRefused(
            f"{what}: the tracking store {redact(tracking_uri)} holds no such run (a sweep "
            "recorded in another store is resumed against it: MLFLOW_TRACKING_URI or tracking.uri)"
        )
    tags = parent.data.tags
    if sweeps.SWEEP_TAG not in tags:
        of = tags.get(runs.PARENT_TAG)
        raise ResumeRefused(
            f"{what}: that run is a configuration of sweep {of}; resume that: sweep.resume={of}"
            if of
            else f"{what}: that run is not a sweep's parent (it has no {sweeps.SWEEP_TAG} tag)"
        )
    check_experiment(parent, config, what)
    refuse_running(parent, what)
    recorded, current = tags.get(provenance.GIT_COMMIT, ""), current_commit()
    if recorded != current:
        raise ResumeRefused(
            f"{what}: the code changed since that sweep: commit {short(recorded)} → "
            f"{short(current)}; check out {short(recorded)} to resume it, or start a new sweep"
        )
    finished = [c for c in sweeps.child_runs(parent_id) if c.info.status == Status.FINISHED]
    for one in {each.data.input: each for each in configurations or [config]}.values():
        given = recorded_params(one).get("data.input", "")
        digests = {
            c.data.params.get("input_digest", "")
            for c in finished
            if c.data.params.get("data.input") == given
        }
        now = digest(one) if digests else ""
        changed = sorted(digests - {now})
        if changed:
            raise ResumeRefused(
                f"{what}: the data changed since that sweep: {given} had digest "
                f"{changed[0][:12]} → now {now[:12]}; resume it on the same data, or start a "
                "new sweep"
            )


def check_experiment(parent: Run, config: Config, what: str) -> None:
    """The parent is in the experiment this sweep records in (under `mlflow run`, that
    of the run it made)."""
    launched = runs.run_id_from_mlflow_run()
    if launched:
        wanted = runs.experiment_of(launched)
        name = sweeps.experiment_name(wanted)
    else:
        name = config.tracking.experiment_name
        wanted = sweeps.experiment_named(name) or ""
    if parent.info.experiment_id != wanted:
        theirs = sweeps.experiment_name(parent.info.experiment_id)
        raise ResumeRefused(
            f"{what}: that sweep is in experiment {theirs!r}, not {name!r} where this sweep "
            f"records; add tracking.experiment_name={theirs} (under mlflow run, "
            f"--experiment-name {theirs})"
        )


def refuse_running(parent: Run, what: str) -> None:
    """A RUNNING parent is resumed only when the process that ran it is known to be gone
    (killed without ending it: SIGKILL, a crash): one on this machine, no longer
    running. Otherwise it may still be going."""
    if parent.info.status != Status.RUNNING:
        return
    mark = parent.data.tags.get(PROCESS_TAG, "")
    host, pid, _ = [*mark.split(), "", "", ""][:3]
    if mark and host == socket.gethostname() and pid.isdigit() and not process_running(mark):
        return
    if not mark:
        where = "and which process runs it is not recorded"
    elif host != socket.gethostname():
        where = f"on {host}; resume it there, or once it ended"
    else:
        where = f"(process {pid}, still running); stop it first (Ctrl-C, or kill {pid})"
    raise ResumeRefused(f"{what}: that sweep is still RUNNING {where}")


def process_mark() -> str:
    """This process, as `refuse_running` tells later whether it still runs."""
    return f"{socket.gethostname()} {os.getpid()} {_start_time(os.getpid())}"


def process_running(mark: str) -> bool:
    """Whether the process `mark` names (on this machine) runs: its pid alive with the
    same start time (a pid used again by another process does not count)."""
    _, pid, started = [*mark.split(), "", "", ""][:3]
    return process_alive(int(pid)) and (not started or _start_time(int(pid)) == started)


def _start_time(pid: int) -> str:
    fields = stat_fields(pid)  # field 22 of /proc/<pid>/stat
    return fields[19] if len(fields) > 19 else ""


def short(commit: str) -> str:
    return commit[:7] if commit else "(none)"


def current_commit() -> str:
    state = provenance.git_state(PROJECT_DIR)
    return state.commit if state else ""


def digest(config: Config) -> str:
    """The digest of the configuration's input as a run records it (`input_digest`)."""
    _, ref = data.read_table(
        config.data.input, config.tracking.timeout_s, read_options(asdict(config.data))
    )
    return ref.digest


def recorded_params(config: Config) -> dict[str, str]:
    """The configuration's resolved config as its child run records it (its params)."""
    return runs.config_params(preflight.recorded_config(config))


def comparable(params: dict[str, str]) -> dict[str, str]:
    """Of a run's params, those of its resolved config, without the sweep's own."""
    return {k: v for k, v in params.items() if "." in k and not k.startswith(SWEEP_SECTION)}


def reopen(parent_id: str, launched: str | None, name: str = "") -> str:
    """The parent RUNNING again, named `name` (what this sweep sweeps) when given, what
    its earlier end said (error, best line, best values) gone; `launched` (the run
    `mlflow run -e sweep` made) names the sweep it resumes."""
    parent = sweeps.find_run(parent_id)
    assert parent is not None  # `check` found it
    tags = parent.data.tags
    note = original_note(tags.get(provenance.NOTE, ""))
    values = {
        RESUMED_TAG: str(int(tags.get(RESUMED_TAG, "0") or 0) + 1),
        RESUMED_AT_TAG: str(int(time.time() * 1000)),
        **({provenance.NOTE: note} if note else {}),
    }
    dropped = [runs.ERROR_TAG, *(() if note else (provenance.NOTE,))]
    dropped += [key for key in tags if key.startswith(BEST_VALUES)]  # `finish` sets them again
    sweeps.reopen(parent_id, values, dropped)
    if name and name != parent.info.run_name:  # more configurations than before
        runs.rename(parent_id, name)
    if launched:  # named for what it does, beside the parent in the run list
        runs.rename(launched, f"resume of {parent.info.run_name}"[: runs.MAX_VALUE_LENGTH])
        page = f"#/experiments/{parent.info.experiment_id}/runs/{parent_id}"
        link = f"[{parent.info.run_name}]({page})"
        runs.log_tags(
            launched,
            {
                RESUMES_TAG: parent_id,
                provenance.NOTE: f"Resumes sweep {link}",
                provenance.KIT_VERSION: __version__,  # handed to the kit (tracking.unlaunched)
            },
        )
    print(f"Resuming sweep {parent_id} ({parent.info.run_name}, was {parent.info.status})")
    return parent_id


def original_note(note: str) -> str:
    """The parent's note without the best-configuration line an earlier end added."""
    head, found, _ = note.rpartition(BEST_LINE)
    return head.removesuffix("\n\n") if found else note


def mark_running(parent_id: str) -> None:
    runs.log_tags(parent_id, {sweeps.SWEEP_TAG: "running", PROCESS_TAG: process_mark()})


def reused(config: Config, parent: str) -> float | None:
    """For a resumed sweep: the sweep metric of the FINISHED child already recorded for
    this configuration at this commit on this data (NaN if it has none), said in one
    line; None when the configuration has to run."""
    if not config.sweep.resume:
        return None
    wanted = comparable(recorded_params(config))
    same = [
        child
        for child in sweeps.child_runs(parent)
        if child.info.status == Status.FINISHED and comparable(child.data.params) == wanted
    ]
    commit = current_commit() if same else ""
    same = [c for c in same if c.data.tags.get(provenance.GIT_COMMIT, "") == commit]
    try:
        now = digest(config) if same else ""
    except KitError:  # the data cannot be read now: the configuration's run says why
        return None
    for child in sorted(same, key=lambda c: c.info.start_time or 0, reverse=True):
        if child.data.params.get("input_digest") == now:
            print(f"{child.info.run_name}: reused run {child.info.run_id} (FINISHED earlier)")
            value = child.data.metrics.get(config.sweep.metric)
            return float("nan") if value is None else value
    return None


def current_children(found: list[Run]) -> tuple[list[Run], dict[str, str]]:
    """One child per configuration (its FINISHED child, else its latest), and the others,
    each with the child that counts instead. A child stopped before it recorded its
    config (no params) ran again under another run: left out."""
    groups: dict[tuple, list[Run]] = {}
    for run in found:
        key = tuple(sorted(comparable(run.data.params).items()))
        if key or run.info.status == Status.FINISHED:
            groups.setdefault(key, []).append(run)
    kept: list[Run] = []
    superseded: dict[str, str] = {}
    for members in groups.values():
        best = max(members, key=lambda r: (r.info.status == Status.FINISHED, r.info.start_time))
        kept.append(best)
        superseded.update({r.info.run_id: best.info.run_id for r in members if r is not best})
    return kept, superseded


def summary_children(parent_id: str, metric: str) -> list[Child]:
    """The sweep's children as its summary counts them: of a resumed sweep, one per
    configuration (`current_children`), those from before the resume marked reused."""
    found = sweeps.child_runs(parent_id)
    parent = sweeps.find_run(parent_id)
    resumed_at = int(parent.data.tags.get(RESUMED_AT_TAG) or 0) if parent else 0
    if resumed_at:
        found, superseded = current_children(found)
        sweeps.tag_runs({old: {SUPERSEDED_TAG: new} for old, new in superseded.items()})
    std_name, test_name = companions(metric)
    return [
        Child(
            run_id=child.info.run_id,
            name=child.info.run_name,
            status=child.info.status,
            params=comparable(child.data.params),
            value=child.data.metrics.get(metric),
            error=child.data.tags.get(runs.ERROR_TAG, ""),
            experiment_id=child.info.experiment_id,
            std=child.data.metrics.get(std_name) if std_name else None,
            test=child.data.metrics.get(test_name) if test_name else None,
            reused=child.info.start_time < resumed_at,
        )
        for child in found
    ]
