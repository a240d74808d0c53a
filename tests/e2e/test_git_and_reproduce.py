"""Running from a git server, reproducing runs, and inspecting them: real git, real MLflow."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from conftest import PYTHON, git, run_command
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_breast_cancer

from logistic_regression.inspection import best_runs
from logistic_regression.tracking.baselines import mark_baseline


def mlflow_run(uri: str, cwd: Path, *extra: str):
    return run_command(
        [
            PYTHON,
            "-m",
            "mlflow",
            "run",
            uri,
            "--env-manager",
            "local",
            "--experiment-name",
            "logistic-regression",
            *extra,
        ],
        cwd=cwd,
    )


def all_runs(client: MlflowClient) -> list:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, order_by=["attributes.start_time DESC"])


def newest_run(client: MlflowClient):
    return all_runs(client)[0]


def own_metrics(run) -> dict[str, float]:
    """A run's metrics without those comparing it with its baseline (context)."""
    return {k: v for k, v in run.data.metrics.items() if not k.startswith("vs_baseline_")}


def kit_cli(cwd: Path, *args: str):
    return run_command([PYTHON, "-m", "logistic_regression", *args], cwd=cwd)


def set_default_c(repo: Path, value: str) -> None:
    conf = repo / "conf" / "model" / "logreg.yaml"
    lines = [
        f"C: {value}" if line.startswith("C: ") else line for line in conf.read_text().splitlines()
    ]
    conf.write_text("\n".join(lines) + "\n")


def test_git_url_versions_run_the_requested_code_and_reproduce(
    kit_repo, git_server, tmp_path, env_cache
):
    old = git(kit_repo, "rev-parse", "HEAD")
    set_default_c(kit_repo, "0.25")
    git(kit_repo, "commit", "-q", "-am", "default C 0.25")
    new = git(kit_repo, "rev-parse", "HEAD")
    url = git_server.publish(kit_repo, "kit")
    client = MlflowClient()

    # The default branch, a commit (what `reproduce` replays) and a named branch. A tag
    # resolves in MLflow's own git code to the same detached checkout as a commit, so the
    # kit sees nothing new there; it is not run again.
    expectations = [
        ((), new, "0.25", None),
        (("--version", old), old, "1.0", None),
        (("--version", "main"), new, "0.25", "main"),
    ]
    runs = {}
    for extra, commit, c_value, branch in expectations:
        done = mlflow_run(url, tmp_path, *extra)
        assert done.returncode == 0, done.stderr
        run = newest_run(client)
        tags = run.data.tags
        assert run.info.status == "FINISHED"
        assert tags["mlflow.source.git.commit"] == commit
        assert tags["mlflow.source.git.repoURL"] == url
        assert tags["mlflow.source.name"] == url
        assert tags["mlflow.project.entryPoint"] == "main"
        assert tags["mlflow.source.git.dirty"] == "false"
        assert run.data.params["model.C"] == c_value, f"{extra} ran the wrong code"
        if branch:
            assert tags["mlflow.source.git.branch"] == branch
        runs[extra] = run

    old_run = runs[("--version", old)]
    done = kit_cli(
        tmp_path, "reproduce", old_run.info.run_id, "--trust", url,
        "--env", "recorded", "--env-cache", str(env_cache),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: reproduced" in done.stdout
    assert "environment: rebuilt from the record" in done.stdout
    assert f"{url} @ {old[:12]}" in done.stdout
    rerun = newest_run(client)
    assert rerun.data.tags["kit.reproduction_of"] == old_run.info.run_id
    assert rerun.data.tags["reproduce.verdict"] == "reproduced"
    assert rerun.data.tags["reproduce.environment"] == "recorded"
    assert rerun.data.tags["mlflow.source.git.commit"] == old
    assert rerun.data.params["model.C"] == "1.0"
    assert rerun.data.metrics == old_run.data.metrics


def test_git_url_with_subdirectory(kit_repo, git_server, tmp_path):
    mono = tmp_path / "mono"
    (mono / "docs").mkdir(parents=True)
    (mono / "docs" / "README.md").write_text("a larger repository\n")
    shutil.copytree(kit_repo, mono / "kit", ignore=shutil.ignore_patterns(".git"))
    git(mono, "init", "-q", "-b", "main")
    git(mono, "add", "-A")
    git(mono, "commit", "-q", "-m", "kit in a subfolder")
    url = git_server.publish(mono, "mono")
    done = mlflow_run(f"{url}#kit", tmp_path, "-P", "C=0.5")
    assert done.returncode == 0, done.stderr
    run = newest_run(MlflowClient())
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.source.name"] == f"{url}#kit"
    assert run.data.tags["mlflow.source.git.commit"] == git(mono, "rev-parse", "HEAD")

    done = kit_cli(tmp_path, "reproduce", run.info.run_id, "--trust", url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: reproduced" in done.stdout


def test_dirty_run_is_reproduced_from_its_recorded_diff(kit_repo, tmp_path):
    """Also: a run that is its experiment's baseline reproduces (the rerun's comparisons
    with the baseline are context, not part of the verdict), and `mlflow run -e
    reproduce` makes its own run the reproduction, left out of `best` unless asked."""
    set_default_c(kit_repo, "0.3")
    # An untracked script beside the change holds two secrets the run knows: the
    # recorded patch hides them (the rerun gets *** there, which training never reads).
    secret_key, hook_token = "PATCHCANARYKEY" + "7d1e5a", "PATCHCANARYHOOK" + "2b9c"
    hook = f"http://127.0.0.1:9/hooks/{hook_token}"  # nothing listens: a warning only
    (kit_repo / "deploy.sh").write_text(
        f"export AWS_SECRET_ACCESS_KEY={secret_key}\ncurl -X POST {hook}\n"
    )
    secrets = {"AWS_SECRET_ACCESS_KEY": secret_key, "LOGREG_WEBHOOK_URL": hook}
    done = run_command([PYTHON, "-m", "logistic_regression.train"], cwd=kit_repo, env=secrets)
    assert done.returncode == 0, done.stderr
    client = MlflowClient()
    original = newest_run(client)
    assert original.data.tags["mlflow.source.git.dirty"] == "true"
    patch = client.download_artifacts(original.info.run_id, "uncommitted.patch", str(tmp_path))
    recorded_patch = Path(patch).read_text()
    assert "+export AWS_SECRET_ACCESS_KEY=***" in recorded_patch and "deploy.sh" in recorded_patch
    assert secret_key not in recorded_patch and hook_token not in recorded_patch
    assert original.data.tags["kit.patch_redacted"] == "2"
    (kit_repo / "deploy.sh").unlink()
    assert not any(name.startswith("vs_baseline_") for name in original.data.metrics)
    mark_baseline(original.info.run_id)  # the experiment gets its baseline after the run
    git(kit_repo, "checkout", "--", ".")  # the user moves on; the change is gone from the tree
    head = git(kit_repo, "rev-parse", "HEAD")

    done = kit_cli(tmp_path, "reproduce", original.info.run_id, "--trust", str(kit_repo))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "+ recorded uncommitted.patch (2 secret values in it recorded as ***)" in done.stdout
    assert "verdict: reproduced" in done.stdout
    assert "not part of the verdict" in done.stdout  # the vs_baseline_* rows, shown
    rerun = newest_run(client)
    assert rerun.data.tags["kit.reproduction_of"] == original.info.run_id
    assert rerun.data.params["model.C"] == "0.3"
    assert rerun.data.tags["mlflow.source.git.dirty"] == "true"
    assert any(name.startswith("vs_baseline_") for name in rerun.data.metrics)
    assert own_metrics(rerun) == original.data.metrics
    assert "reproduce.mismatches" not in rerun.data.tags
    assert git(kit_repo, "status", "--porcelain") == "", "reproduce must not touch the user's tree"
    assert git(kit_repo, "rev-parse", "HEAD") == head

    # The same through the MLproject entry point: the run `mlflow run` makes is the
    # reproduction (no second, empty run), tagged with the original's code.
    before = {run.info.run_id for run in all_runs(client)}
    done = mlflow_run(
        str(kit_repo), tmp_path, "-e", "reproduce", "-P", f"run_id={original.info.run_id}"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: reproduced" in done.stdout
    assert git(kit_repo, "status", "--porcelain") == ""
    (made,) = [run for run in all_runs(client) if run.info.run_id not in before]
    assert made.info.status == "FINISHED"
    assert made.info.run_name == original.info.run_name
    assert made.data.tags["kit.reproduction_of"] == original.info.run_id
    assert made.data.tags["reproduce.verdict"] == "reproduced"
    assert (
        made.data.tags["mlflow.source.git.commit"] == original.data.tags["mlflow.source.git.commit"]
    )
    assert made.data.params["run_id"] == original.info.run_id  # the -P that `mlflow run` logged
    assert made.data.params["model.C"] == "0.3"
    assert own_metrics(made) == original.data.metrics

    ranked = best_runs("cv_roc_auc_mean", "logistic-regression", top=10)
    assert original.info.run_id in ranked
    assert rerun.info.run_id not in ranked and made.info.run_id not in ranked
    everything = best_runs("cv_roc_auc_mean", "logistic-regression", top=10,
                           include_reproductions=True)  # fmt: skip
    assert rerun.info.run_id in everything and made.info.run_id in everything


def test_changed_data_is_refused_and_changed_metrics_are_reported(kit_repo, tmp_path):
    frame = load_breast_cancer(as_frame=True).frame
    table = tmp_path / "cancer.csv"
    frame.to_csv(table, index=False)
    done = run_command(
        [PYTHON, "-m", "logistic_regression.train", f"data.input={table}"], cwd=kit_repo
    )
    assert done.returncode == 0, done.stderr
    client = MlflowClient()
    original = newest_run(client)
    mark_baseline(original.info.run_id)  # context for the rerun, never a mismatch

    # A metric that no longer matches (as if the code or data had silently changed).
    client.log_metric(original.info.run_id, "test_accuracy", 0.5)
    done = kit_cli(tmp_path, "reproduce", original.info.run_id, "--trust", str(kit_repo))
    assert done.returncode == 1
    assert "verdict: NOT reproduced" in done.stdout
    assert newest_run(client).data.tags["reproduce.mismatches"] == "test_accuracy"

    pd.concat([frame, frame.head(3)]).to_csv(table, index=False)
    before = len(client.search_runs([original.info.experiment_id]))
    done = kit_cli(tmp_path, "reproduce", original.info.run_id, "--trust", str(kit_repo))
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: input {table} changed since run ")
    assert "recorded digest" in done.stderr and "Traceback" not in done.stderr
    assert len(client.search_runs([original.info.experiment_id])) == before, "refused before work"


def test_classic_file_store_layout(kit_repo, tmp_path):
    store = tmp_path / "mlruns"
    done = run_command(
        [PYTHON, "-m", "logistic_regression.train", "model.C=0.5"],
        cwd=kit_repo,
        env={"MLFLOW_TRACKING_URI": str(store), "MLFLOW_ALLOW_FILE_STORE": "true"},
    )
    assert done.returncode == 0, done.stderr
    run_dirs = [p for p in store.glob("*/*") if (p / "meta.yaml").is_file() and p.name != "models"]
    (run_dir,) = run_dirs
    assert {"params", "metrics", "tags", "artifacts"} <= {p.name for p in run_dir.iterdir()}
    assert (run_dir / "params" / "model.C").read_text() == "0.5"
    assert (run_dir / "metrics" / "test_roc_auc").is_file()
    assert (run_dir / "tags" / "mlflow.source.git.commit").read_text() == git(
        kit_repo, "rev-parse", "HEAD"
    )
    assert (run_dir / "artifacts" / "report.html").is_file()


def test_a_run_on_versioned_s3_data_is_reproduced_from_its_version(
    kit_repo, s3_env, tmp_path, env_cache
):
    """Artifacts in S3, input a versioned S3 object that is overwritten after the run:
    `reproduce` replays the recorded VersionId, so the data and metrics still match.
    (An unversioned key that changed is refused before any work: tests/e2e/test_s3_data.py;
    `inspect` of an S3-backed run: tests/e2e/test_s3_runs.py.)"""
    s3 = s3_env.client()
    bucket = "versioned-data"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    frame = load_breast_cancer(as_frame=True).frame
    first = s3.put_object(Bucket=bucket, Key="cancer.csv", Body=frame.to_csv(index=False))
    uri = f"s3://{bucket}/cancer.csv"
    settings = ["storage=s3", "storage.bucket=kit", "tracking.experiment_name=versioned"]
    done = run_command(
        [PYTHON, "-m", "logistic_regression.train", *settings, f"data.input={uri}"], cwd=kit_repo
    )
    assert done.returncode == 0, done.stderr
    client = MlflowClient()
    original = newest_run(client)
    assert original.data.params["input_version"] == first["VersionId"]
    assert original.info.artifact_uri.startswith("s3://kit/mlflow/versioned/")

    changed = pd.concat([frame, frame.head(5)]).to_csv(index=False)
    s3.put_object(Bucket=bucket, Key="cancer.csv", Body=changed)  # the key moves on

    # in the recorded environment: the S3 endpoint and keys reach the rebuilt one too
    done = kit_cli(
        tmp_path, "reproduce", original.info.run_id, "--trust", str(kit_repo),
        "--env", "recorded", "--env-cache", str(env_cache),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: reproduced" in done.stdout
    assert "environment: rebuilt from the record" in done.stdout
    rerun = newest_run(client)
    assert rerun.data.tags["kit.reproduction_of"] == original.info.run_id
    assert rerun.data.params["input_version"] == first["VersionId"]
    assert rerun.data.params["input_digest"] == original.data.params["input_digest"]
    assert rerun.info.artifact_uri.startswith("s3://kit/")
    assert rerun.data.metrics == original.data.metrics


def test_a_multiclass_run_on_text_labels_gaps_and_categories_reproduces(kit_repo, tmp_path):
    """The kinds of data the demo does not have (three text labels, missing cells, text
    features) reproduce like the demo: every fold of every metric, the digest, exactly."""
    from test_classes import table

    path = tmp_path / "animals.csv"
    table(["bird", "cat", "dog"]).to_csv(path, index=False)
    done = run_command(
        [
            PYTHON,
            "-m",
            "logistic_regression.train",
            f"data.input={path}",
            "data.target=label",
            "preprocessing.drop_columns=[id]",
            "evaluation.cv_folds=3",
        ],
        cwd=kit_repo,
    )
    assert done.returncode == 0, done.stderr
    client = MlflowClient()
    original = newest_run(client)
    assert original.data.params["task"] == "multiclass"
    assert original.data.params["classes"] == "bird, cat, dog"

    done = kit_cli(tmp_path, "reproduce", original.info.run_id, "--trust", str(kit_repo))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: reproduced" in done.stdout
    assert "cv_f1_macro_per_fold[3]" in done.stdout  # compared fold by fold
    rerun = newest_run(client)
    assert rerun.data.tags["kit.reproduction_of"] == original.info.run_id
    assert own_metrics(rerun) == own_metrics(original)
