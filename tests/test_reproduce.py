"""reproduce: refusals before any work, replayed config, and the comparison itself."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from servers import free_port

from logistic_regression import provenance, trust
from logistic_regression.config import compose_config
from logistic_regression.data import read_table
from logistic_regression.packages import Environment
from logistic_regression.reproduce import (
    MISMATCH_TAG,
    NotReproducible,
    Recorded,
    open_reproduction,
    replay_overrides,
    reproduce,
)
from logistic_regression.trust import UntrustedRepository
from logistic_regression.verdict import compare, print_comparison


def recorded_run(config, tags: dict[str, str], digest: str | None = None) -> str:
    """A run as the kit would have recorded it, made directly through MLflow."""
    client = MlflowClient()
    experiment = client.create_experiment("recorded")
    run = client.create_run(experiment, tags=tags)
    _, ref = read_table("breast_cancer")
    client.log_param(run.info.run_id, "input_path", "breast_cancer")
    client.log_param(run.info.run_id, "input_digest", digest or ref.digest)
    resolved = OmegaConf.to_container(OmegaConf.structured(config))
    client.log_text(run.info.run_id, yaml.safe_dump(resolved), "config.yaml")
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def runs_in_store() -> int:
    client = MlflowClient()
    return len(client.search_runs([e.experiment_id for e in client.search_experiments()]))


def test_unknown_run_is_refused():
    with pytest.raises(NotReproducible, match="no run with id 'f00'"):
        reproduce("f00")


def test_run_without_commit_is_refused(config):
    run_id = recorded_run(config, {provenance.SOURCE_NAME: "/somewhere"})
    with pytest.raises(NotReproducible, match="recorded no git commit"):
        reproduce(run_id)


def test_dirty_run_without_its_diff_is_refused(config, tmp_path):
    run_id = recorded_run(
        config,
        {
            provenance.SOURCE_NAME: f"file://{tmp_path}",
            provenance.GIT_COMMIT: "a" * 40,
            provenance.GIT_DIRTY: "true",
        },
    )
    with pytest.raises(NotReproducible, match="dirty tree and its uncommitted.patch was not"):
        reproduce(run_id)


def test_unreachable_repository_is_refused_before_a_run_is_created(config):
    url = f"git://127.0.0.1:{free_port()}/gone.git"
    run_id = recorded_run(
        config,
        {
            provenance.SOURCE_NAME: url,
            provenance.GIT_COMMIT: "a" * 40,
            provenance.GIT_DIRTY: "false",
        },
    )
    before = runs_in_store()
    with pytest.raises(NotReproducible, match="git ls-remote failed"):
        reproduce(run_id, trusted=(url,))
    assert runs_in_store() == before


def test_a_run_whose_experiment_was_deleted_is_refused_before_any_work(config, tmp_path):
    """The reproduction would go in the original's experiment, where MLflow takes no
    run: one line saying how to restore it, before the clone (no git server is asked)."""
    from logistic_regression.tracking.experiments import DeletedExperiment

    url = f"git://127.0.0.1:{free_port()}/never-asked.git"
    tags = {
        provenance.SOURCE_NAME: url,
        provenance.GIT_COMMIT: "a" * 40,
        provenance.GIT_DIRTY: "false",
    }
    run_id = recorded_run(config, tags)
    client = MlflowClient()
    experiment = client.get_run(run_id).info.experiment_id
    client.delete_experiment(experiment)
    with pytest.raises(DeletedExperiment, match=f"restore --experiment-id {experiment}"):
        reproduce(run_id, trusted=(url,))
    assert client.search_runs([experiment], run_view_type=3)[0].info.run_id == run_id
    assert len(client.search_runs([experiment], run_view_type=3)) == 1


def test_changed_input_digest_is_refused_before_a_run_is_created(config, tmp_path):
    tags = {
        provenance.SOURCE_NAME: f"file://{tmp_path}",
        provenance.GIT_COMMIT: "a" * 40,
        provenance.GIT_DIRTY: "false",
    }
    run_id = recorded_run(config, tags, digest="0" * 64)
    before = runs_in_store()
    with pytest.raises(NotReproducible, match="input breast_cancer changed since run .*recorded"):
        reproduce(run_id, trusted=(str(tmp_path),))
    assert runs_in_store() == before


def test_a_run_tagged_with_a_strangers_repository_is_refused_before_any_clone(
    config, git_server, tmp_path, capsys
):
    """Anyone with EDIT on an experiment can set a run's code tags. Here they name a
    repository (served for real) whose MLproject would leave a mark if its code ran:
    `reproduce` refuses in one line naming it and how to trust it; nothing is cloned,
    run or recorded. Named with --trust, the same repository is cloned."""
    from conftest import git

    from logistic_regression.__main__ import main as cli

    evil = tmp_path / "evil"
    evil.mkdir()
    marker = tmp_path / "ran"
    (evil / "MLproject").write_text("name: evil\nentry_points: {main: {command: 'true'}}\n")
    (evil / "logistic_regression").mkdir()
    (evil / "logistic_regression" / "train.py").write_text(f"open({str(marker)!r}, 'w')\n")
    git(evil, "init", "-q", "-b", "main")
    git(evil, "add", "-A")
    git(evil, "commit", "-q", "-m", "looks harmless")
    url = git_server.publish(evil, "helpful-fork")
    commit = git(evil, "rev-parse", "HEAD")
    tags = {
        provenance.SOURCE_NAME: url,
        provenance.GIT_REPO_URL: url,
        provenance.GIT_COMMIT: commit,
        provenance.GIT_DIRTY: "false",
    }
    run_id = recorded_run(config, tags)
    before = runs_in_store()
    assert cli(["reproduce", run_id]) == 2
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
    assert url in line and f"--trust {url}" in line and "not this checkout's repository" in line
    assert not marker.exists() and runs_in_store() == before
    # Trusting another repository of the same server is no way around it either.
    with pytest.raises(UntrustedRepository):
        reproduce(run_id, trusted=(url.replace("helpful-fork", "kit"),))
    assert not marker.exists() and runs_in_store() == before
    # (Trusted by name, such a repository is cloned and run: tests/e2e/test_git_and_reproduce.py.)


@pytest.mark.parametrize(
    "recorded, trusted",
    [
        ("https://git.example/team/kit.git", "https://git.example/team/kit"),
        ("https://***@git.example/team/kit.git", "ssh://git@git.example/team/kit.git"),
        ("git@git.example:team/kit.git", "https://GIT.example/team/kit/"),
        ("git://127.0.0.1:9418/kit.git", "git://127.0.0.1:9418/kit"),
    ],
)
def test_one_repository_in_any_spelling_is_trusted(recorded, trusted):
    assert trust.canonical(recorded) == trust.canonical(trusted)
    trust.check(recorded, "r1", [trusted])


@pytest.mark.parametrize(
    "recorded, trusted",
    [
        ("https://git.example/team/kit.git", "https://git.example/team/kit-fork"),
        ("https://git.example/team/kit.git", "https://evil.example/team/kit.git"),
        ("git://127.0.0.1:9418/kit.git", "git://127.0.0.1:9419/kit.git"),
        ("/home/me/kit", "/home/me/kit-old"),
    ],
)
def test_another_repository_is_not_trusted(recorded, trusted):
    with pytest.raises(UntrustedRepository, match="pass --trust"):
        trust.check(recorded, "r1", [trusted])


def test_this_checkouts_own_repository_and_remotes_are_trusted(tmp_path, monkeypatch):
    from conftest import git

    checkout = tmp_path / "work"
    checkout.mkdir()
    git(checkout, "init", "-q")
    git(checkout, "remote", "add", "origin", "https://git.example/team/kit.git")
    monkeypatch.chdir(checkout / ".")
    trust.check(str(checkout), "r1", [])
    trust.check("git@git.example:team/kit.git", "r1", [])
    with pytest.raises(UntrustedRepository):
        trust.check("https://git.example/someone/kit.git", "r1", [])


def test_the_rerun_gets_only_what_a_training_run_needs(monkeypatch):
    from logistic_regression.environment import for_rerun

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "p")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "k")
    monkeypatch.setenv("GITHUB_TOKEN", "someone-elses-business")
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/agent")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db/x")
    env = for_rerun({"MLFLOW_RUN_ID": "r1"})
    assert env["MLFLOW_RUN_ID"] == "r1" and env["MLFLOW_TRACKING_PASSWORD"] == "p"
    assert env["AWS_SECRET_ACCESS_KEY"] == "k" and env["PATH"]
    for name in ("GITHUB_TOKEN", "SSH_AUTH_SOCK", "DATABASE_URL"):
        assert name not in env


def test_replayed_overrides_recreate_the_recorded_config(config, tmp_path):
    config = dataclasses.replace(
        config,
        model=dataclasses.replace(
            config.model, C=0.125, penalty="elasticnet", solver="saga", l1_ratio=0.3
        ),
    )
    config = dataclasses.replace(
        config, tracking=dataclasses.replace(config.tracking, note="it's, {tricky}: ${x}")
    )
    recorded = Recorded(
        run_id="r1",
        run_name="n",
        experiment_id="0",
        repository="",
        subdirectory="",
        commit="c",
        dirty=False,
        config=OmegaConf.to_container(OmegaConf.structured(config)),
        input_path="breast_cancer",
        input_digest="",
        metrics={},
        environment=Environment(),
        patch=None,
        tags={},
    )
    replayed = compose_config(replay_overrides(recorded, tmp_path / "out"))
    assert replayed.model == config.model
    assert replayed.evaluation == config.evaluation and replayed.seed == config.seed
    assert replayed.data.output == str(tmp_path / "out")
    assert replayed.tracking.note == "Reproduction of run r1. it's, {tricky}: ${x}"


def _recorded(metrics, environment=None) -> Recorded:
    return Recorded(
        "r",
        "n",
        "0",
        "",
        "",
        "c",
        False,
        {},
        "x",
        "d1",
        metrics,
        environment or Environment(),
        None,
        {},
    )


def test_comparison_is_exact_unless_a_tolerance_is_given():
    recorded = _recorded({"a": 0.9, "b": 0.5})
    exact = compare(recorded, {"a": 0.9, "b": 0.5 + 1e-12}, "d1", Environment(), tolerance=0.0)
    assert not exact.reproduced
    assert [name for name, *_, same in exact.metrics if not same] == ["b"]
    assert compare(
        recorded, {"a": 0.9, "b": 0.5 + 1e-12}, "d1", Environment(), tolerance=1e-9
    ).reproduced


def test_missing_metric_or_other_data_is_not_reproduced():
    recorded = _recorded({"a": 0.9})
    assert not compare(recorded, {}, "d1", Environment(), 0.0).reproduced
    assert not compare(recorded, {"a": 0.9}, "d2", Environment(), 0.0).reproduced


def test_comparisons_with_the_baseline_are_context_never_the_verdict(capsys):
    """A run recorded before its experiment had a baseline, reproduced after one was
    marked (or moved): the rerun has vs_baseline_* metrics the original lacks, or others."""
    own = {"cv_roc_auc_mean": 0.99, "test_accuracy": 0.97}
    before_baseline = _recorded(own)
    rerun = {**own, "vs_baseline_test_accuracy_diff": 0.0, "vs_baseline_test_accuracy_ratio": 1.0}
    result = compare(before_baseline, rerun, "d1", Environment(), 0.0)
    assert result.reproduced and result.mismatches == []
    assert [name for name, *_ in result.metrics] == ["cv_roc_auc_mean", "test_accuracy"]
    assert [name for name, *_, same in result.context if not same] == [
        "vs_baseline_test_accuracy_diff",
        "vs_baseline_test_accuracy_ratio",
    ]
    moved = _recorded({**own, "vs_baseline_test_accuracy_diff": 0.02})  # another baseline then
    assert compare(moved, rerun, "d1", Environment(), 0.0).reproduced
    assert compare(moved, own, "d1", Environment(), 0.0).reproduced  # no baseline any more

    print_comparison(before_baseline, "new", result, 0.0)
    out = capsys.readouterr().out
    assert "not part of the verdict" in out and "vs_baseline_test_accuracy_diff" in out
    assert "verdict: reproduced" in out

    different = compare(before_baseline, {**rerun, "test_accuracy": 0.5}, "d1", Environment(), 0.0)
    assert not different.reproduced and different.mismatches == ["test_accuracy"]
    other_data = compare(before_baseline, rerun, "d2", Environment(), 0.0)
    assert not other_data.reproduced and other_data.mismatches == ["input_digest"]


def _original(tags: dict[str, str]) -> Recorded:
    client = MlflowClient()
    experiment = client.create_experiment("originals")
    run_id = client.create_run(experiment, run_name="logreg-C1-l2", tags=tags).info.run_id
    return Recorded(run_id, "logreg-C1-l2", experiment, "", "", "c" * 40, False, {}, "x", "d",
                    {}, {}, None, tags)  # fmt: skip


CODE = {
    provenance.SOURCE_NAME: "git://example.invalid/kit.git",
    provenance.GIT_COMMIT: "c" * 40,
    provenance.GIT_REPO_URL: "git://example.invalid/kit.git",
}


def test_reproduction_is_a_new_tagged_run_in_the_originals_experiment():
    original = _original({**CODE, "mlflow.project.entryPoint": "main"})
    run_id, experiment = open_reproduction(MlflowClient(), original)
    run = MlflowClient().get_run(run_id)
    assert run_id != original.run_id and experiment == original.experiment_id
    assert run.info.experiment_id == original.experiment_id
    assert run.data.tags["kit.reproduction_of"] == original.run_id
    assert run.data.tags[provenance.GIT_COMMIT] == "c" * 40
    assert run.data.tags["mlflow.project.entryPoint"] == "main"


def test_under_mlflow_run_the_run_it_made_is_the_reproduction(monkeypatch):
    """`mlflow run . -e reproduce` exports MLFLOW_RUN_ID: that run becomes the
    reproduction (its name, the original's code tags, the link), not an empty wrapper."""
    original = _original(CODE)
    client = MlflowClient()
    wrapper_experiment = client.create_experiment("where mlflow run records")
    made = client.create_run(
        wrapper_experiment,
        run_name="dashing-fox-123",
        tags={
            provenance.SOURCE_NAME: "file:///home/me/kit",
            provenance.GIT_COMMIT: "d" * 40,
            provenance.GIT_BRANCH: "main",
            "mlflow.project.entryPoint": "reproduce",
        },
    ).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", made)
    runs_before = runs_in_store()
    run_id, experiment = open_reproduction(client, original)
    assert (run_id, experiment) == (made, wrapper_experiment)
    assert runs_in_store() == runs_before, "no second run"
    run = client.get_run(made)
    assert run.info.run_name == "logreg-C1-l2"
    assert run.data.tags["kit.reproduction_of"] == original.run_id
    assert run.data.tags[provenance.GIT_COMMIT] == "c" * 40
    assert run.data.tags[provenance.SOURCE_NAME] == "git://example.invalid/kit.git"
    assert provenance.GIT_BRANCH not in run.data.tags  # the original recorded none
    assert run.data.tags["mlflow.project.entryPoint"] == "reproduce"  # how it was started
    assert MISMATCH_TAG not in run.data.tags


def test_environment_differences_are_listed_among_what_the_run_imports():
    before = Environment("3.11.7", {"numpy": "2.4.6", "gone": "1", "pytest": "8"}, None)
    recorded = _recorded({}, before)
    after = Environment("3.11.8", {"numpy": "2.5.0", "new": "2", "pytest": "9"}, None)
    result = compare(recorded, {}, "d1", after, 0.0, frozenset({"numpy", "gone", "new"}))
    assert result.environment.relevant == [
        ("python", "3.11.7", "3.11.8"),
        ("gone", "1", None),
        ("new", None, "2"),
        ("numpy", "2.4.6", "2.5.0"),
    ]
    assert result.environment.others == ["pytest"]


def test_cli_refusal_is_one_line(capsys):
    from logistic_regression.__main__ import main

    assert main(["reproduce", "does-not-exist"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: no run with id 'does-not-exist'")
    assert main(["reproduce", "x", "--tolerance", "-1"]) == 2
    assert "--tolerance=-1.0 is not allowed" in capsys.readouterr().err


def test_inspect_unknown_run_is_one_line(capsys):
    from logistic_regression.__main__ import main

    assert main(["inspect", "nope"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert errors == ["error: no run with id 'nope' in this tracking store"]


def test_a_reproduction_stopped_before_its_rerun_ended_is_not_left_running():
    """A signal while the rerun trains kills the rerun with this process: the
    reproduction run it had opened ends KILLED, and the stop names it."""
    import signal

    from logistic_regression.errors import Interrupted
    from logistic_regression.reproduce import _ended_if_stopped

    client = MlflowClient()
    experiment = client.create_experiment("reproductions")
    stopped = client.create_run(experiment, run_name="stopped").info.run_id
    failed = client.create_run(experiment, run_name="failed").info.run_id
    with pytest.raises(Interrupted) as raised, _ended_if_stopped(client, stopped):
        raise Interrupted(signal.SIGTERM)
    assert raised.value.run_id == stopped
    with pytest.raises(OSError), _ended_if_stopped(client, failed):
        raise OSError("the clone vanished")
    assert client.get_run(stopped).info.status == "KILLED"
    assert client.get_run(stopped).data.tags["kit.error"] == "interrupted by SIGTERM"
    assert client.get_run(failed).info.status == "FAILED"
    assert "the clone vanished" in client.get_run(failed).data.tags["kit.error"]


def test_a_commit_gone_from_its_repository_is_named_with_what_would_help(config, tmp_path):
    """History rewritten after the run (a force-push, a reset and gc): the clone has no
    such commit. One line naming the commit and the repository and how to bring the
    commit back, not git's `reference is not a tree`; the reproduction is not left
    RUNNING."""
    from conftest import committed_repo, git

    repo = committed_repo(tmp_path / "repo", {"MLproject": "name: gone\n"}, "kept")
    (repo / "later.txt").write_text("rewritten away\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "gone")
    commit = git(repo, "rev-parse", "HEAD")
    tags = {
        provenance.SOURCE_NAME: f"file://{repo}",
        provenance.GIT_COMMIT: commit,
        provenance.GIT_DIRTY: "false",
    }
    run_id = recorded_run(config, tags)
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")

    with pytest.raises(NotReproducible) as caught:
        reproduce(run_id, trusted=(str(repo),))
    message = str(caught.value)
    assert f"commit {commit} is not in {repo} any more" in message, message
    assert f"git push {repo} {commit}:refs/heads/keep-{commit[:12]}" in message
    assert "reference is not a tree" not in message and "\n" not in message
    client = MlflowClient()
    experiment = client.get_run(run_id).info.experiment_id
    statuses = [run.info.status for run in client.search_runs([experiment])]
    assert "RUNNING" not in statuses


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        (None, "recorded no environment (no environment.txt)"),
        ("# python 3.9.1 (CPython)\nmlflow==3.17.2\n", "recorded Python 3.9.1, which is not"),
    ],
    ids=["no-environment", "python-not-installed"],
)
def test_an_environment_that_cannot_be_rebuilt_is_one_line_before_any_run(
    config, tmp_path, capsys, environment, expected
):
    """`reproduce --env recorded` refuses in one line, exit 2, with no reproduction run
    and nothing in the cache, when the recorded environment cannot be built here."""
    from conftest import committed_repo, git

    from logistic_regression.__main__ import main

    repo = committed_repo(tmp_path / "repo", {"MLproject": "name: kit\n"})
    tags = {
        provenance.SOURCE_NAME: f"file://{repo}",
        provenance.GIT_COMMIT: git(repo, "rev-parse", "HEAD"),
        provenance.GIT_DIRTY: "false",
    }
    run_id = recorded_run(config, tags)
    if environment is not None:
        MlflowClient().log_text(run_id, environment, "environment.txt")
    before = runs_in_store()
    cache = tmp_path / "cache"
    args = ["reproduce", run_id, "--env", "recorded", "--env-cache", str(cache)]
    assert main([*args, "--trust", str(repo)]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1, err
    assert runs_in_store() == before, "no reproduction run"
    assert not cache.exists() or list(cache.iterdir()) == []
