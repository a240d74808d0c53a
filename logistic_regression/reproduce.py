"""`reproduce RUN_ID`: re-run a recorded run from its own code and data, then compare.

MLflow records a commit but cannot say whether a re-run came out the same; this does.
It never touches the user's working tree: the recorded repository (remote URL or local
source) is cloned into a temporary folder, the recorded commit checked out there and,
for a run made from a dirty tree, the recorded `uncommitted.patch` applied. The run's
own `config.yaml` gives every setting, so the old code gets only keys it knows.

The verdict rests on what describes the run's own model and data: its CV and test
metrics and its input digest (differing package versions are listed beside it).
Metrics that compare the run with other runs (`vs_baseline_*`, which depend on which
run was the baseline when each run was made) are context: shown, never deciding, so
marking or moving a baseline never changes a verdict.

The reproduction is a run tagged `kit.reproduction_of=<original run id>` (`best` and
`baseline` leave such runs out unless asked). Under `mlflow run . -e reproduce`, the
run `mlflow run` created (MLFLOW_RUN_ID) is the reproduction itself; otherwise a new run
in the original's experiment.

Refuses before any work when reproduction is impossible (unknown run, code or diff not
recorded, input data changed, an experiment this user may only read) or not trusted:
the run's repository must be this checkout's own or one the user named (`--trust`,
trust.py), since reproducing runs that code with the user's credentials. The rerun gets
only the environment a training run needs (`environment.for_rerun`).

The rerun runs in this environment (`--env current`), or in the one the run recorded,
rebuilt with uv and cached (`--env recorded`, rebuild.py). Either way the verdict lists
the packages that differ among what the run imports (packages.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from logistic_regression import packages, provenance, rebuild, trust
from logistic_regression.config import PROJECT_DIR, flatten_tree, hydra_quote
from logistic_regression.environment import for_rerun
from logistic_regression.errors import Interrupted, first_line
from logistic_regression.packages import Environment
from logistic_regression.recorded import (
    NotReproducible,
    Recorded,
    check_data,
    download,
    input_uri,
    read_recorded,
)
from logistic_regression.status import Status
from logistic_regression.tracking import experiments, runs
from logistic_regression.tracking.runs import ERROR_TAG
from logistic_regression.uris import absolute_tracking_uri, redact
from logistic_regression.validation import NOTE_LIMIT
from logistic_regression.verdict import compare, print_comparison

# The tags that say which code a run ran: the reproduction carries the original's.
CODE_TAGS = (
    provenance.SOURCE_NAME,
    provenance.GIT_COMMIT,
    provenance.GIT_REPO_URL,
    provenance.GIT_BRANCH,
    "mlflow.gitRepoURL",
)

VERDICT_TAG = "reproduce.verdict"
ENVIRONMENT_TAG = "reproduce.environment"  # `recorded` (rebuilt) or `current`
MISMATCH_TAG = "reproduce.mismatches"
# Settings that describe where the rerun records, not what it computes.
NOT_REPLAYED = {
    "tracking.uri",
    "storage.spool_dir",  # like the two above, what this machine's environment says
    "storage.endpoint",
    "data.output",
    "tracking.note",
    "data.input",
    "notify.webhook_url",  # a secret, recorded as *** : the reproduction uses your own
}


@dataclass(frozen=True)
class RerunIn:
    """The environment the rerun runs in: this one (`current`), or the one the run
    recorded, rebuilt (`recorded`: with `python` instead of the recorded version when
    given, cached under `cache`; rebuild.py)."""

    recorded: bool = False
    python: str = ""
    cache: Path | None = None


def _git(cwd: Path, *args: str) -> None:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["git failed"])[-1]
        raise NotReproducible(f"git {args[0]} failed: {reason}")


def checkout(recorded: Recorded, workdir: Path) -> Path:
    """A fresh clone at the recorded commit (plus the recorded diff); returns the project dir."""
    source = workdir / "source"
    _git(workdir, "clone", "--quiet", "--no-checkout", recorded.repository, str(source))
    present = subprocess.run(
        ["git", "cat-file", "-e", f"{recorded.commit}^{{commit}}"], cwd=source, capture_output=True
    )
    if present.returncode != 0:
        shown = redact(recorded.repository)
        raise NotReproducible(
            f"commit {recorded.commit} is not in {shown} any more (its history was rewritten, "
            "or the commit was never pushed there); if a clone or another remote still has "
            f"it, push it back (git push {shown} {recorded.commit}:refs/heads/"
            f"keep-{recorded.commit[:12]}) and reproduce again"
        )
    _git(source, "-c", "advice.detachedHead=false", "checkout", "--quiet", recorded.commit)
    if recorded.patch is not None:
        try:
            _git(source, "apply", "--whitespace=nowarn", str(recorded.patch))
        except NotReproducible as exc:
            hidden = recorded.tags.get(provenance.PATCH_REDACTED)
            if not hidden:
                raise
            raise NotReproducible(
                f"{exc}; {hidden} secret values in the recorded uncommitted.patch were "
                "recorded as *** and a changed line around one no longer matches the commit"
            ) from None
    project = source / recorded.subdirectory if recorded.subdirectory else source
    if not (project / "MLproject").is_file():
        raise NotReproducible(
            f"no MLproject at commit {recorded.commit[:12]} of {recorded.repository}"
        )
    return project


def _override(key: str, value) -> str:
    if isinstance(value, str):
        return f"{key}={hydra_quote(value)}"
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    if value is None:
        return f"{key}=null"
    return f"{key}={value!r}"


def replay_overrides(recorded: Recorded, output: Path) -> list[str]:
    """Every recorded setting as a Hydra override, re-pointing only where results go."""
    overrides = []
    flat = flatten_tree(recorded.config)
    for key, value in flat.items():
        if key not in NOT_REPLAYED:
            overrides.append(_override(key, value))
    overrides.append(_override("data.input", input_uri(recorded)))
    overrides.append(_override("data.output", str(output)))
    note = f"Reproduction of run {recorded.run_id}. " + str(flat.get("tracking.note", ""))
    overrides.append(_override("tracking.note", note.strip()[:NOTE_LIMIT]))
    return overrides


def open_reproduction(client: MlflowClient, recorded: Recorded) -> tuple[str, str]:
    """The run the reproduction records into, tagged with the original's code and
    `kit.reproduction_of`: the run `mlflow run` created for this process (MLFLOW_RUN_ID),
    else a new run in the original's experiment. Returns (run id, experiment id)."""
    code = {k: recorded.tags[k] for k in CODE_TAGS if k in recorded.tags}
    marks = {**code, provenance.REPRODUCTION_OF: recorded.run_id}
    continued = runs.run_id_from_mlflow_run()
    if continued:
        current = client.get_run(continued)
        # `mlflow run` recorded the code it was started from; the reproduction ran the
        # original's commit, so its code tags are the original's (and no others).
        for name in CODE_TAGS:
            if name in current.data.tags and name not in recorded.tags:
                client.delete_tag(continued, name)
        runs.log_tags(continued, marks)
        client.update_run(continued, name=recorded.run_name)
        return continued, current.info.experiment_id
    entry_point = "mlflow.project.entryPoint"
    if entry_point in recorded.tags:
        marks[entry_point] = recorded.tags[entry_point]
    created = client.create_run(
        recorded.experiment_id,
        run_name=recorded.run_name,
        tags={k: redact(v) for k, v in marks.items()},
    )
    return created.info.run_id, recorded.experiment_id


def reproduce(
    run_id: str,
    tolerance: float = 0.0,
    trusted: tuple[str, ...] = (),
    rerun_in: RerunIn = RerunIn(),
) -> int:
    """Re-run `run_id` and compare; 0 when it reproduced, 1 when not (refusals raise).
    `trusted`: repositories the user trusts besides this checkout's own (trust.py).

    Everything that can be refused is, before any clone: the run, its code's repository
    (trusted?), its experiment (deleted? may this user record in it?), its data, and the
    recorded environment (rebuilt before the run exists). The reproduction run exists
    from the clone on, and ends FAILED if the clone does."""
    client = MlflowClient()
    with tempfile.TemporaryDirectory(prefix="logreg-reproduce-") as scratch_dir:
        scratch = Path(scratch_dir)
        recorded = read_recorded(client, run_id, scratch)
        trust.check(recorded.repository, run_id, trusted)
        continued = runs.run_id_from_mlflow_run()
        experiment = client.get_experiment(recorded.experiment_id)
        if not continued:  # the reproduction goes in the original's experiment
            experiments.active(experiment)
        check_data(recorded)
        # The repository answers (before a run exists); the clone itself waits until
        # the run is open, which an experiment this user may only read refuses.
        _git(scratch, "ls-remote", "--quiet", recorded.repository, "HEAD")
        rebuilt = _rebuilt(recorded, rerun_in)
        with runs.refusing_read_only(experiment.name):
            new_id, experiment_id = open_reproduction(client, recorded)
        runs.log_tags(new_id, {ENVIRONMENT_TAG: "recorded" if rebuilt else "current"})
        with _ended_if_stopped(client, new_id):
            project = checkout(recorded, scratch)
            if rebuilt is not None:
                rebuild.install_kit(rebuilt, project, scratch / "kit")
            code = _rerun_and_compare(
                client, recorded, new_id, experiment_id, project, scratch, tolerance, rebuilt
            )
    return code


def _rebuilt(recorded: Recorded, rerun_in: RerunIn) -> rebuild.Rebuilt | None:
    if not rerun_in.recorded:
        return None
    cache = rerun_in.cache or rebuild.default_cache(dict(os.environ))
    return rebuild.rebuild(recorded.environment, recorded.run_id, cache, rerun_in.python)


@contextmanager
def _ended_if_stopped(client: MlflowClient, run_id: str) -> Iterator[None]:
    """The reproduction run exists from here on: a signal or an error before the rerun
    ended it (the rerun is killed with this process) ends it KILLED or FAILED."""
    try:
        yield
    except BaseException as exc:
        interrupted = isinstance(exc, Interrupted)
        reason = str(exc) if interrupted else f"{type(exc).__name__}: {first_line(exc)}"
        with suppress(Exception), runs.bounded_store():
            if client.get_run(run_id).info.status == Status.RUNNING:
                runs.fail_run(run_id, reason, Status.KILLED if interrupted else Status.FAILED)
        if isinstance(exc, Interrupted):
            raise exc.ended(run_id) from None
        raise


def _rerun_and_compare(
    client: MlflowClient,
    recorded: Recorded,
    new_id: str,
    experiment_id: str,
    project: Path,
    scratch: Path,
    tolerance: float,
    rebuilt: rebuild.Rebuilt | None,
) -> int:
    """Train the recorded configuration again as run `new_id` (in the rebuilt
    environment when there is one), then compare and tell."""
    # Without this process's own thread limits: the rerun's BLAS threads must be
    # what the original run had, whatever commit it runs.
    env = for_rerun(
        {
            "MLFLOW_RUN_ID": new_id,
            "MLFLOW_TRACKING_URI": absolute_tracking_uri(mlflow.get_tracking_uri()),
            "MLFLOW_EXPERIMENT_ID": experiment_id,
        }
    )
    python = sys.executable
    if rebuilt is not None:
        env.pop("PYTHONHOME", None)
        env.update(rebuilt.variables(scratch / "kit", env.get("PATH", os.defpath)))
        python = str(rebuilt.python)
    overrides = replay_overrides(recorded, Path.cwd() / "outputs")
    print(
        f"Re-running {recorded.commit[:12]} of {recorded.repository} as run {new_id} ...",
        flush=True,
    )
    done = subprocess.run(
        [python, "-m", "logistic_regression.train", *overrides],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    rerun = client.get_run(new_id)
    if done.returncode != 0 or rerun.info.status != Status.FINISHED:
        if rerun.info.status == Status.RUNNING:
            client.set_terminated(new_id, Status.FAILED)
        reason = redact((done.stderr.strip().splitlines() or ["no output"])[-1])
        runs.log_tags(new_id, {VERDICT_TAG: "failed", ERROR_TAG: reason})
        print(f"error: the rerun failed: {reason}", file=sys.stderr)
        return 1
    environment = download(new_id, "environment.txt", scratch / "new")
    result = compare(
        recorded,
        runs.metrics_with_steps(rerun),
        rerun.data.params.get("input_digest", ""),
        packages.parse(environment.read_text()) if environment else Environment(),
        tolerance,
        packages.runtime_closure(packages.kit_requirements(PROJECT_DIR)),
    )
    verdict = {VERDICT_TAG: "reproduced" if result.reproduced else "not reproduced"}
    if result.mismatches:
        verdict[MISMATCH_TAG] = ", ".join(result.mismatches)
    runs.log_tags(new_id, verdict)
    print_comparison(recorded, new_id, result, tolerance, rebuilt)
    return 0 if result.reproduced else 1
