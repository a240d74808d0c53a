"""What the kit writes is its user's alone: a sweep (one configuration) started with
the usual umask 022 on the embedded default, in a fresh folder, leaves no file or
folder that another local user could read: mlflow.db, ./mlruns, the spool, the
predictions, Hydra's multirun.yaml."""

from __future__ import annotations

import os
import stat
import subprocess

from conftest import PYTHON


def test_nothing_the_kit_writes_is_readable_by_other_users(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["LOGREG_SPOOL_DIR"] = str(work / "spool")
    done = subprocess.run(
        [PYTHON, "-m", "logistic_regression.train", "-m", "model.C=0.5",
         f"data.output={work / 'outputs'}", "tracking.experiment_name=modes"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
        preexec_fn=lambda: os.umask(0o022),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    written = sorted(work.rglob("*"))
    names = {path.name for path in written}
    assert {"mlflow.db", "multirun.yaml", "predictions.csv", "report.html"} <= names, names
    readable = [
        f"{stat.filemode(path.stat().st_mode)} {path.relative_to(work)}"
        for path in written
        if not path.is_symlink() and path.stat().st_mode & 0o077
    ]
    assert readable == [], readable


def test_a_first_mlflow_run_in_a_checkout_makes_a_store_only_its_user_reads(kit_repo):
    """`mlflow run .` on a fresh checkout: MLflow's own process makes mlflow.db (through
    the kit's default-experiment provider), under the umask 022 the user has."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["LOGREG_SPOOL_DIR"] = str(kit_repo / "spool")
    done = subprocess.run(
        [PYTHON, "-m", "mlflow", "run", ".", "--env-manager", "local", "-P", "cv_folds=2"],
        cwd=kit_repo, env=env, capture_output=True, text=True, timeout=600,
        preexec_fn=lambda: os.umask(0o022),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("mlflow.db", "mlruns", "outputs"):
        mode = (kit_repo / name).stat().st_mode
        assert not mode & 0o077, f"{stat.filemode(mode)} {name}"
