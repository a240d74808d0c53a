"""The whole team picture at once: a sweep's configurations as Ray tasks on a two-node
cluster on 127.0.0.1, recording through the authenticating team server (PostgreSQL,
SeaweedFS, basic-auth): one parent, nested children, artifacts through the server, the
user's login reaching every task and written nowhere."""

from __future__ import annotations

import subprocess

import pytest
from conftest import PYTHON
from team_setup import (  # noqa: F401 - team_fixture: the module's `team`
    WRITER,
    assert_no_secret,
    client_env,
    logged_in,
    runs_of,
    team_fixture,
)

pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="the `ray` extra")


def test_a_ray_sweep_records_through_the_team_server(team, ray_nodes, tmp_path):
    env = {**client_env(tmp_path, WRITER, team.passwords[WRITER]), **ray_nodes.environment()}
    done = subprocess.run(
        [
            PYTHON, "-m", "logistic_regression.train", "-m",
            "tracking=team", f"tracking.uri={team.url}", "tracking.experiment_name=team-ray",
            f"data.output={tmp_path / 'outputs'}",
            "hydra/launcher=ray", f"hydra.launcher.ray.init.address={ray_nodes.address}",
            "model.C=0.1,1",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    team.outputs += [done.stdout, done.stderr]
    assert done.returncode == 0, done.stderr[-3000:]

    runs = runs_of(team, "team-ray")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    (parent,) = parents
    assert len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {c.info.status for c in children} == {"FINISHED"}
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["sweep.best_run_id"] in {c.info.run_id for c in children}
    with logged_in("admin", team.admin_password):
        client = team.admin()
        for child in children:
            assert child.info.artifact_uri.startswith("mlflow-artifacts:")
            assert child.data.tags["kit.artifacts"] == "complete"
            listed = {a.path for a in client.list_artifacts(child.info.run_id)}
            assert {"report.html", "config.yaml"} <= listed
        assert "sweep_summary.html" in {a.path for a in client.list_artifacts(parent.info.run_id)}
        recorded = [str(r.data.params) + str(r.data.tags) for r in runs]
    assert not any((tmp_path / "spool").glob("*/journal.jsonl")), "nothing left to sync"
    assert_no_secret(team, [*recorded, *team.outputs])
