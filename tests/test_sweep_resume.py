"""Resuming a sweep (`-m sweep.resume=<parent run id> ...`) against a real SQLite store:
finished configurations are reused, failed and stopped ones run again, the parent's
summary counts each configuration once; a parent that cannot be resumed is refused in
one line before any work."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess

import mlflow
import pytest
import yaml
from conftest import PROJECT, recorded_run
from mlflow.tracking import MlflowClient
from test_sweep import runs_of, sweep

from logistic_regression import __main__ as kit_main
from logistic_regression import evaluate, pipeline, sweep_resume, train
from logistic_regression.config import compose_config
from logistic_regression.errors import Interrupted
from logistic_regression.provenance import GIT_COMMIT, NOTE

SWEPT = "model.C=0.1,1,10"
RUN, CROSS_VALIDATE = pipeline.run, evaluate.cross_validate


def scripted(monkeypatch, failures: dict[float, BaseException]) -> list[float]:
    """Each configuration run is listed (its C); those named in `failures` raise that
    once their run recorded its config (in the folds), as a failure or a Ctrl-C would."""
    calls: list[float] = []

    def listed(config, *args, **kwargs):
        calls.append(config.model.C)
        return RUN(config, *args, **kwargs)

    def folds(fitted, estimator, *args, **kwargs):
        failure = failures.get(estimator.steps[-1][1].C)
        if failure is not None:
            raise failure
        return CROSS_VALIDATE(fitted, estimator, *args, **kwargs)

    monkeypatch.setattr(pipeline, "run", listed)
    monkeypatch.setattr(evaluate, "cross_validate", folds)
    return calls


def by_c(children) -> dict[str, list]:
    found: dict[str, list] = {}
    for child in sorted(children, key=lambda c: c.info.start_time):
        found.setdefault(child.data.params["model.C"], []).append(child)
    return found


def test_a_resumed_sweep_reuses_what_finished_and_runs_the_rest(monkeypatch):
    """Stopped twice (a Ctrl-C in the third configuration), resumed twice: each
    configuration runs until it finished once, and never after."""
    interrupt = Interrupted(signal.SIGINT)
    calls = scripted(monkeypatch, {1.0: RuntimeError("flaky"), 10.0: interrupt})
    assert sweep(SWEPT) == 128 + signal.SIGINT
    (parent,), children = runs_of("sweeps")
    first = {c: [r.info.status for r in rs] for c, rs in by_c(children).items()}
    assert first == {"0.1": ["FINISHED"], "1.0": ["FAILED"], "10.0": ["KILLED"]}
    assert parent.info.status == "KILLED" and parent.data.tags["kit.sweep"] == "aborted"
    finished_first = by_c(children)["0.1"][0].info.run_id
    parent_id = parent.info.run_id

    calls = scripted(monkeypatch, {10.0: interrupt})  # the flaky failure is gone
    assert sweep(SWEPT, f"sweep.resume={parent_id}") == 128 + signal.SIGINT
    assert calls == [1.0, 10.0], "the finished configuration ran again"
    (parent,), _ = runs_of("sweeps")
    assert parent.info.status == "KILLED", "an interrupted resume stays resumable"

    calls = scripted(monkeypatch, {})
    assert sweep(SWEPT, f"sweep.resume={parent_id}") == 0
    assert calls == [10.0]
    (parent,), children = runs_of("sweeps")
    groups = by_c(children)
    assert parent.info.run_id == parent_id and parent.info.status == "FINISHED"
    assert [r.info.status for r in groups["0.1"]] == ["FINISHED"]
    assert groups["0.1"][0].info.run_id == finished_first
    assert [r.info.status for r in groups["1.0"]] == ["FAILED", "FINISHED"]
    assert [r.info.status for r in groups["10.0"]] == ["KILLED", "KILLED", "FINISHED"]
    kept = {rs[-1].info.run_id for rs in groups.values()}
    for runs in groups.values():  # the old attempts point at the child that counts
        assert {r.data.tags.get("kit.superseded_by") for r in runs[:-1]} <= {runs[-1].info.run_id}
        assert all(r.data.tags.get("kit.superseded_by") for r in runs[:-1])

    tags = parent.data.tags
    assert tags["sweep.children"] == "3" and tags["sweep.failed"] == "0"
    assert tags["sweep.reused"] == "2" and tags["sweep.resumed"] == "2"
    assert tags["kit.sweep"] == "finished" and "kit.error" not in tags
    best = max((rs[-1] for rs in groups.values()), key=lambda r: r.data.metrics["cv_roc_auc_mean"])
    assert tags["sweep.best_run_id"] == best.info.run_id
    assert [c.info.run_id for c in children if c.data.tags.get("kit.sweep_best")] == [
        best.info.run_id
    ]
    assert tags[NOTE].count("Best configuration") == 1
    assert parent.data.metrics["best_cv_roc_auc_mean"] == best.data.metrics["cv_roc_auc_mean"]
    summary = mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/sweep_summary.html")
    assert "3 configurations, 0 failed, 2 reused" in summary
    assert summary.count('class="badge reused"') == 2
    for child in children:
        assert (child.info.run_id[:12] in summary) == (child.info.run_id in kept)


def parent_run(experiment: str = "sweeps", status: str | None = "KILLED", **tags: str) -> str:
    """A sweep's parent as an earlier sweep left it, at this checkout's commit."""
    recorded = {"kit.sweep": "aborted", GIT_COMMIT: sweep_resume.current_commit(), **tags}
    return recorded_run(experiment, "sweep model.C=1,2", status=status, tags=recorded)


def every_run() -> set[tuple[str, str]]:
    client = MlflowClient()
    ids = [e.experiment_id for e in client.search_experiments()]
    return {(r.info.run_id, r.info.status) for r in client.search_runs(ids)}


def plain_run() -> str:
    return recorded_run("sweeps", "plain")


def a_child() -> str:
    return recorded_run("sweeps", "child", tags={"mlflow.parentRunId": parent_run()})


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: "0123456789abcdef0123456789abcdef", "holds no such run"),
        (plain_run, "that run is not a sweep's parent (it has no kit.sweep tag)"),
        (a_child, "that run is a configuration of sweep "),
        (lambda: parent_run("elsewhere"), "that sweep is in experiment 'elsewhere', not 'sweeps'"),
        (lambda: parent_run(status=None), "still RUNNING and which process runs it is not"),
        (
            lambda: parent_run(status=None, **{"kit.sweep_process": sweep_resume.process_mark()}),
            lambda: f"still RUNNING (process {os.getpid()}, still running)",
        ),
        (
            lambda: parent_run(status=None, **{"kit.sweep_process": "elsewhere.invalid 12 34"}),
            "still RUNNING on elsewhere.invalid",
        ),
        (
            lambda: parent_run(**{GIT_COMMIT: "0" * 40}),
            lambda: "the code changed since that sweep: commit 0000000 → "
            f"{sweep_resume.current_commit()[:7]}",
        ),
    ],
    ids=[
        "unknown", "not-a-sweep", "a-child", "another-experiment", "running-unrecorded",
        "running-alive", "running-elsewhere", "commit-changed",
    ],
)  # fmt: skip
def test_a_parent_that_cannot_be_resumed_is_refused_in_one_line(make, expected, capsys):
    parent = make()
    before = every_run()
    assert sweep("model.C=1,2", f"sweep.resume={parent}") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: sweep.resume={parent}: ") and err.count("\n") == 1, err
    assert (expected() if callable(expected) else expected) in err
    assert every_run() == before, "a refused resume changed the store"


def test_a_sweep_on_data_that_changed_is_not_resumed(tmp_path, capsys):
    table = tmp_path / "table.csv"
    table.write_text("x,target\n" + "".join(f"{(i * 7) % 13 + 0.5},{i % 2}\n" for i in range(40)))
    on_table = [f"data.input={table}", "evaluation.cv_folds=2"]
    assert sweep("model.C=1", *on_table) == 0
    (parent,), _ = runs_of("sweeps")
    recorded = sweep_resume.digest(compose_config(on_table))
    table.write_text(table.read_text() + "2.5,0\n3.5,1\n")
    before = every_run()
    assert sweep("model.C=1,2", *on_table, f"sweep.resume={parent.info.run_id}") == 2
    err = capsys.readouterr().err
    now = sweep_resume.digest(compose_config(on_table))
    assert f"the data changed since that sweep: {table} had digest {recorded[:12]} → " in err
    assert f"now {now[:12]}" in err and err.count("\n") == 1
    assert every_run() == before


def test_a_running_parent_whose_process_is_gone_is_resumed():
    """Killed without ending its parent (SIGKILL, a crash): its recorded process is not
    running (here: this pid, but another process's start time), so it is resumed."""
    gone = f"{socket.gethostname()} {os.getpid()} 1"
    parent = parent_run(status=None, **{"kit.sweep_process": gone, "kit.error": "old"})
    assert sweep("model.C=1", f"sweep.resume={parent}") == 0
    (finished,), children = runs_of("sweeps")
    assert finished.info.run_id == parent and finished.info.status == "FINISHED"
    assert [c.info.status for c in children] == ["FINISHED"]
    assert "kit.error" not in finished.data.tags
    assert finished.data.tags["kit.sweep_process"] == sweep_resume.process_mark()


def test_which_recorded_process_still_runs():
    assert sweep_resume.process_running(sweep_resume.process_mark())
    ended = subprocess.Popen(["true"])
    ended.wait()
    assert not sweep_resume.process_running(f"{socket.gethostname()} {ended.pid} 1")


def test_resume_is_for_a_sweep(capsys):
    assert train.main(["sweep.resume=abc0123"]) == 2
    assert "sweep.resume=abc0123 resumes a sweep: add -m" in capsys.readouterr().err


def test_the_best_line_of_an_earlier_end_leaves_the_note():
    note = "my note\n\nBest configuration: [a](#/x), cv_roc_auc_mean = 0.9"
    assert sweep_resume.original_note(note) == "my note"
    assert sweep_resume.original_note("Best configuration: [a](#/x), m = 1") == ""
    assert sweep_resume.original_note("only mine") == "only mine"


def test_the_sweep_entry_point_passes_resume_through(monkeypatch):
    """`mlflow run . -e sweep -P resume=<id>` (and without it) as MLflow substitutes the
    parameters (each shell-quoted) into the entry point's command."""
    entry = yaml.safe_load((PROJECT / "MLproject").read_text())["entry_points"]["sweep"]
    assert entry["parameters"]["resume"] == {"type": "string", "default": ""}
    given: list[list[str]] = []
    monkeypatch.setattr(train, "main", lambda args: given.append(args) or 0)
    for resume in ("abc123", ""):
        command = entry["command"].format(
            sweep=shlex.quote("model.C=1,2"), resume=shlex.quote(resume)
        )
        argv = shlex.split(command)
        assert argv[:3] == ["python", "-m", "logistic_regression"]
        assert kit_main.main(argv[3:]) == 0
    assert given == [
        ["-m", "model.C=1,2", "sweep.resume=abc123"],
        ["-m", "model.C=1,2", "sweep.resume="],
    ]
    assert compose_config(["sweep.resume="]).sweep.resume == ""
