"""End to end: `mlflow run` and `python -m` on a git copy of the kit, real MLflow store.

Each test makes the kit into a fresh git repository under tmp_path and records into a
SQLite store there. Slow (each run starts MLflow's CLI and a Python process): e2e.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import PYTHON, git, run_command
from mlflow.tracking import MlflowClient

from logistic_regression.config import hydra_quote
from logistic_regression.mlproject import PARAMETERS

PROVENANCE_TAGS = (
    "mlflow.source.name",
    "mlflow.source.git.commit",
    "mlflow.source.git.branch",
    "mlflow.source.git.repoURL",
    "mlflow.source.git.dirty",
    "mlflow.note.content",
)
NOTE = "baseline, C=0.5: 'quoted' ${not_interpolated}"


def mlflow_run(kit: Path, cwd: Path, *params: str, env_manager: str = "local"):
    args = [
        PYTHON,
        "-m",
        "mlflow",
        "run",
        str(kit),
        "--env-manager",
        env_manager,
        "--experiment-name",
        "logistic-regression",
    ]
    for param in params:
        args += ["-P", param]
    return run_command(args, cwd=cwd, timeout=900)


def only_run(client: MlflowClient):
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], order_by=["start_time DESC"]
    )
    return runs


def artifact_files(run) -> set[str]:
    root = Path(run.info.artifact_uri.removeprefix("file://"))
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def kit(kit_repo):
    git(kit_repo, "remote", "add", "origin", "git://127.0.0.1:9/kit.git")
    return kit_repo


def test_mlflow_run_and_python_m_record_the_same_provenance(kit, tmp_path):
    done = mlflow_run(kit, tmp_path, "C=0.5", f"note={NOTE}")
    assert done.returncode == 0, done.stderr
    assert "CV roc_auc:" in done.stdout and " ± " in done.stdout
    client = MlflowClient()
    (by_mlflow_run,) = only_run(client)

    done = run_command(
        [
            PYTHON,
            "-m",
            "logistic_regression.train",
            "model.C=0.5",
            f"tracking.note={hydra_quote(NOTE)}",
        ],
        cwd=kit,
    )
    assert done.returncode == 0, done.stderr
    by_python_m = next(r for r in only_run(client) if r.info.run_id != by_mlflow_run.info.run_id)

    head = git(kit, "rev-parse", "HEAD")
    expected = {
        "mlflow.source.name": f"file://{kit}",
        "mlflow.source.git.commit": head,
        "mlflow.source.git.branch": "main",
        "mlflow.source.git.repoURL": "git://127.0.0.1:9/kit.git",
        "mlflow.source.git.dirty": "false",
        "mlflow.note.content": NOTE,
    }
    for run in (by_mlflow_run, by_python_m):
        assert run.info.status == "FINISHED"
        assert run.info.run_name == "breast_cancer-target-C0.5-l2"
        assert {k: run.data.tags.get(k) for k in PROVENANCE_TAGS} == expected
        assert run.data.params["model.C"] == "0.5"
        assert run.data.params["input_path"] == "breast_cancer"
        assert Path(run.data.tags["kit.output_path"]).is_file()
        assert {
            "report.html",
            "predictions.csv",
            "features.txt",
            "config.yaml",
            "environment.txt",
        } <= artifact_files(run)
        assert "uncommitted.patch" not in artifact_files(run)
    assert by_mlflow_run.data.tags["mlflow.project.entryPoint"] == "main"
    # The report shows provenance as the run holds it: MLflow's PROJECT, not LOCAL.
    root = Path(by_mlflow_run.info.artifact_uri.removeprefix("file://"))
    assert ">PROJECT<" in (root / "report.html").read_text()
    # The run page shows what the user passed and the resolved config, no placeholder.
    assert by_mlflow_run.data.params["C"] == "0.5"
    assert by_mlflow_run.data.params.keys() - by_python_m.data.params.keys() == {"C", "note"}
    unpassed = set(PARAMETERS) - {"C", "note"} - by_python_m.data.params.keys()
    assert not unpassed & by_mlflow_run.data.params.keys()
    # Same config, same data: bit-identical metrics whichever way the run was started.
    assert by_mlflow_run.data.metrics == by_python_m.data.metrics
    assert git(kit, "status", "--porcelain") == "", "a run must not dirty the tree"


def test_dirty_tree_is_flagged_and_its_diff_logged(kit, tmp_path):
    conf = kit / "conf" / "model" / "logreg.yaml"
    conf.write_text(conf.read_text().replace("max_iter: 1000", "max_iter: 900"))
    done = mlflow_run(kit, tmp_path, "C=2")
    assert done.returncode == 0, done.stderr
    (run,) = only_run(MlflowClient())
    assert run.data.tags["mlflow.source.git.dirty"] == "true"
    assert run.data.params["model.max_iter"] == "900"
    patch = Path(run.info.artifact_uri.removeprefix("file://")) / "uncommitted.patch"
    assert "+max_iter: 900" in patch.read_text()


# One case per way a bad value is refused under `mlflow run` (the message of every other
# bad value is checked in process: tests/test_config.py, test_data.py, test_mlproject.py).
@pytest.mark.parametrize(
    ("param", "message"),
    [
        # the kit's validation of a well-typed value (validation.validate)
        ("C=-1", "error: model.C=-1.0 is not allowed; C must be a number > 0"),
        # Hydra refuses the type while composing
        ("C=abc", "error: invalid value for model.C: 'abc' is not a number (such as 0.5)"),
        # the input, checked when the data is loaded
        ("input=missing.csv", "error: data.input='missing.csv': no such file"),
        # the output folder, created and written before the run goes on
        ("output=/proc/kit-output", "error: data.output='/proc/kit-output' cannot be used"),
        # a parameter the MLproject entry point does not know
        ("alpha=1", "error: unknown parameter 'alpha'"),
        # an unclosed quote in the free overrides (was shlex's traceback)
        ("overrides=tracking.note='abc", 'error: overrides="tracking.note=\'abc": a quote is'),
    ],
)
def test_bad_parameters_fail_clearly_and_leave_no_running_run(kit, tmp_path, param, message):
    done = mlflow_run(kit, tmp_path, param)
    assert done.returncode != 0
    assert message in done.stderr
    error_lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert "Traceback" not in done.stderr
    runs = only_run(MlflowClient())
    assert runs, "mlflow run creates its run before the kit starts"
    for run in runs:
        assert run.info.status == "FAILED"
        assert run.data.tags["kit.error"] in error_lines[0]
        assert not any(k.startswith("cv_") for k in run.data.metrics)


def canonical(requirement: str) -> str:
    """`Name[extra]==1.0` as `name==1.0`: how a lock names the installed distribution."""
    name, _, version = requirement.partition("==")
    name = re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()
    return f"{name}=={version}"


def test_env_manager_uv_builds_the_pinned_environment(kit, tmp_path):
    """`--env-manager uv` builds python_env.yaml's environment and trains inside it."""
    done = mlflow_run(kit, tmp_path, "C=0.5", env_manager="uv")
    assert done.returncode == 0, done.stderr
    (run,) = only_run(MlflowClient())
    assert run.info.status == "FINISHED"
    lock = (Path(run.info.artifact_uri.removeprefix("file://")) / "environment.txt").read_text()
    pins = [line for line in (kit / "python_env.yaml").read_text().splitlines() if "==" in line]
    locked = {canonical(line) for line in lock.splitlines()}
    for pin in pins:  # `Flask-WTF==1.3.0` is locked as `flask-wtf==1.3.0`, an extra dropped
        assert canonical(pin.strip().removeprefix("- ")) in locked, pin
    assert "pytest==" not in lock, "the run must use the isolated environment, not the test one"


def test_mlflow_run_in_a_checkout_lands_where_best_and_baselines_look(kit):
    """No --experiment-name: `mlflow run .` in the kit's folder records into the kit's
    experiment (its default-experiment provider), so `best` lists those runs and a
    baseline applies to the next one."""
    bare = [PYTHON, "-m", "mlflow", "run", ".", "--env-manager", "local"]
    first = run_command([*bare, "-P", "C=0.5"], cwd=kit, timeout=900)
    assert first.returncode == 0, first.stderr
    assert "note: mlflow run recorded this run" not in first.stderr
    client = MlflowClient()
    (run,) = only_run(client)
    assert client.get_experiment(run.info.experiment_id).name == "logistic-regression"

    marked = run_command([PYTHON, "-m", "logistic_regression", "baseline", run.info.run_id], kit)
    assert marked.returncode == 0, marked.stderr
    second = run_command([*bare, "-P", "C=2"], cwd=kit, timeout=900)
    assert second.returncode == 0, second.stderr
    later = next(r for r in only_run(client) if r.info.run_id != run.info.run_id)
    assert later.info.experiment_id == run.info.experiment_id
    assert later.data.tags["kit.baseline_run_id"] == run.info.run_id

    best = run_command(
        [PYTHON, "-m", "logistic_regression", "best", "--metric", "cv_roc_auc_mean"], kit
    )
    assert best.returncode == 0, best.stderr
    assert run.info.run_id in best.stdout and later.info.run_id in best.stdout
    assert [e.name for e in client.search_experiments()] == ["logistic-regression", "Default"]
    assert client.search_runs(["0"]) == []


FIRST_OPEN = (
    "from logistic_regression.tracking.default_experiment import KitExperimentProvider\n"
    "print(KitExperimentProvider().get_experiment_id())\n"
)


def test_four_first_runs_at_once_on_a_new_sqlite_store_all_start(kit_repo, tmp_path):
    """What four `mlflow run .` started together do first: ask the kit's provider for the
    experiment on a store that does not exist yet. Each MLflow process made the tables at
    once and all four failed (tracebacks, a store no later run could open); now one makes
    them, the others wait, and all four get the same experiment."""
    import subprocess

    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    starts = [
        subprocess.Popen(
            [PYTHON, "-c", FIRST_OPEN],
            cwd=kit_repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    answers = [start.communicate(timeout=300) for start in starts]
    for start, (_out, err) in zip(starts, answers, strict=True):
        assert start.returncode == 0, err
        assert "Traceback" not in err
    assert len({out.strip() for out, _ in answers}) == 1
    client = MlflowClient(uri)
    assert [e.name for e in client.search_experiments()] == ["logistic-regression", "Default"]


def test_mlflow_run_against_a_server_nobody_listens_on_is_one_line_within_the_bound(
    kit, closed_port
):
    """MLflow's own first call (the default-experiment lookup) retried for minutes; the
    kit's provider asks first, within tracking.timeout_s, and ends `mlflow run` with the
    kit's line, exit 2, before any run exists."""
    uri = f"http://127.0.0.1:{closed_port}"
    bare = [PYTHON, "-m", "mlflow", "run", ".", "--env-manager", "local"]
    done = run_command(
        bare,
        cwd=kit,
        env={"MLFLOW_TRACKING_URI": uri},
        timeout=240,
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert lines == [
        f"error: tracking store {uri} cannot be used: connection refused (no server listens "
        "there); check that it is running and reachable at that address (MLFLOW_TRACKING_URI, "
        f"else tracking.uri), or raise tracking.timeout_s (now 10 s)"
    ], done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("labels", "given"), [(("0", "1"), "1.0"), (("陰性", "陽性"), "陽性")])
def test_a_positive_label_mlflow_run_records_otherwise_is_logged_beside_it(
    kit, tmp_path, labels, given
):
    """MLflow logs each -P value as typed (text shell-quoted: `'陽性'`); the kit's label
    as found in the data went under the same name and MLflow refused the run
    (`Changing param values is not allowed`) after it had trained. It now goes beside."""
    rows = [f"{i / 10},{labels[i % 2]}" for i in range(40)]
    table = tmp_path / "labels.csv"
    table.write_text("x,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    done = mlflow_run(kit, tmp_path, f"input={table}", "target=label", f"positive_label={given}")
    assert done.returncode == 0, done.stderr
    (run,) = only_run(MlflowClient())
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["positive_label"] in (given, f"'{given}'")  # what mlflow run recorded
    expected = labels[1]
    if params["positive_label"] == expected:
        assert "positive_label_resolved" not in params
    else:
        assert params["positive_label_resolved"] == expected


def test_the_compare_entry_compares_a_run_with_its_baseline(kit, tmp_path):
    """`-e compare -P baseline=true` (run_b left empty): the baseline is A, the run B; the
    run `mlflow run` made is named after the two and keeps the comparison."""
    from conftest import recorded_run

    from logistic_regression.tracking.baselines import mark_baseline

    base = recorded_run("logistic-regression", "base", {"model.C": "0.5"}, {"test_f1": 0.9})
    other = recorded_run("logistic-regression", "other", {"model.C": "2.0"}, {"test_f1": 0.8})
    mark_baseline(base)
    done = run_command(
        [PYTHON, "-m", "mlflow", "run", str(kit), "--env-manager", "local", "-e", "compare",
         "-P", f"run_a={other}", "-P", "baseline=true"],
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"compare run A {base} (base) with run B {other} (other)" in done.stdout
    assert "  model.C: 0.5 -> 2.0" in done.stdout.splitlines()
    (made,) = [r for r in only_run(MlflowClient()) if r.info.run_id not in (base, other)]
    assert made.info.status == "FINISHED"
    assert made.info.run_name == f"compare {base[:8]} {other[:8]}"
    assert {"comparison.txt", "comparison.html"} <= artifact_files(made)
