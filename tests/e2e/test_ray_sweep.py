"""Sweeps on a Ray cluster (`hydra/launcher=ray`): a real two-node cluster on 127.0.0.1
(tests/servers.py), each configuration a Ray task whose worker the raylet started (not
the sweep's process), nested under the sweep's parent run as with any launcher."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from conftest import PYTHON
from mlflow.tracking import MlflowClient
from test_sweep import runs_of

pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="the `ray` extra")


def start_sweep(cluster, cwd, *overrides: str, experiment: str = "ray") -> subprocess.Popen:
    command = [
        PYTHON,
        "-m",
        "logistic_regression.train",
        "-m",
        f"tracking.experiment_name={experiment}",
        "hydra/launcher=ray",
        f"hydra.launcher.ray.init.address={cluster.address}",
        *overrides,
    ]
    return subprocess.Popen(
        command,
        cwd=cwd,
        env={**os.environ, **cluster.environment()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[str, str]:
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError(f"the Ray sweep did not end within {timeout} s") from None


SECRET = "ray-sweep-tracking-password-1234"
WEBHOOK_TOKEN = "ray-sweep-webhook-token-5678"


def test_a_ray_sweep_is_one_parent_with_a_finished_child_per_configuration(
    ray_nodes, tmp_path, monkeypatch
):
    """The children reach the test's store (MLFLOW_TRACKING_URI, an absolute path that
    the sweep's folder does not hold, set for the driver only), and the tracking password
    given to the driver is nowhere in the runs, the output, Hydra's files or Ray's logs."""
    from servers import WebhookReceiver

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)  # forwarded; sqlite ignores it
    receiver = WebhookReceiver()
    monkeypatch.setenv("LOGREG_WEBHOOK_URL", receiver.url(f"hooks/{WEBHOOK_TOKEN}"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    try:
        process = start_sweep(ray_nodes, elsewhere, "model.C=0.1,1,10,100")
        out, err = finish(process)
    finally:
        receiver.stop()
    assert process.returncode == 0, err[-3000:]
    (parent,), children = runs_of("ray")
    assert len(children) == 4
    assert [c.info.status for c in children] == ["FINISHED"] * 4
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert sorted(float(c.data.params["model.C"]) for c in children) == [0.1, 1, 10, 100]
    client = MlflowClient()
    for child in children:
        stored = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"report.html", "predictions.csv", "config.yaml"} <= stored, stored
    models = client.search_logged_models(experiment_ids=[parent.info.experiment_id])
    assert sorted(m.source_run_id for m in models) == sorted(c.info.run_id for c in children)
    assert {str(m.status) for m in models} == {"READY"}
    tags = parent.data.tags
    assert parent.info.status == "FINISHED"
    assert tags["sweep.children"] == "4" and tags["sweep.failed"] == "0"
    best = next(c for c in children if c.info.run_id == tags["sweep.best_run_id"])
    assert best.data.tags["kit.sweep_best"] == "true"
    assert "sweep_summary.html" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert f"Sweep {parent.info.run_id}: 4 configurations, 0 failed" in out
    assert not (elsewhere / "mlflow.db").exists()
    # The webhook hears the sweep's end once, from the driver, as for any sweep.
    ((path, message),) = receiver.requests
    assert path == f"/hooks/{WEBHOOK_TOKEN}"
    assert message["run_id"] == parent.info.run_id and message["status"] == "FINISHED"

    for secret in (SECRET, WEBHOOK_TOKEN):
        assert secret not in out + err
        for run in (parent, *children):
            assert secret not in repr(run.data.params) + repr(run.data.tags)
        for folder in (elsewhere, ray_nodes.temp):
            for path in folder.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    assert secret.encode() not in path.read_bytes(), path


def test_a_failing_configuration_is_a_failed_child_and_the_sweep_goes_on(ray_nodes, tmp_path):
    process = start_sweep(ray_nodes, tmp_path, "model.C=1,-1", experiment="ray-failing")
    out, err = finish(process)
    assert process.returncode == 0, err[-3000:]
    (parent,), children = runs_of("ray-failing")
    (failed,) = [c for c in children if c.info.status == "FAILED"]
    assert len(children) == 2
    assert "model.C=-1.0 is not allowed" in failed.data.tags["kit.error"]
    assert failed.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep.failed"] == "1"
    assert "2 configurations, 1 failed" in out


def wait_for_running_children(process, client, experiment_name: str, count: int) -> list:
    deadline = time.monotonic() + 240
    running: list = []
    while len(running) < count and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.3)
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is not None:
            found = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")
            running = [r for r in found if "mlflow.parentRunId" in r.data.tags]
    return running


def test_ctrl_c_stops_the_tasks_on_the_cluster_and_ends_every_run_killed(ray_nodes, tmp_path):
    # Eight configurations, two at a time: when a running child is seen (a search that a
    # loaded machine may answer late), at least four have yet to start, so the signal
    # always meets a sweep that is still going (with four, a loaded run once saw it end).
    swept = "model.C=0.01,0.1,0.5,1,5,10,100,1000"
    process = start_sweep(ray_nodes, tmp_path, swept, "evaluation.cv_folds=10", experiment="stop")
    client = MlflowClient()
    assert len(wait_for_running_children(process, client, "stop", 1)) >= 1
    process.send_signal(signal.SIGINT)
    out, err = finish(process, timeout=120)
    assert process.returncode == 130, err[-3000:]
    (parent,), children = runs_of("stop")
    assert parent.info.status == "KILLED"
    assert children and "RUNNING" not in {c.info.status for c in children}, err[-3000:]
    assert "KILLED" in {c.info.status for c in children}


def test_a_lost_node_fails_its_children_with_the_reason_and_the_sweep_ends(ray_nodes, tmp_path):
    """The second node's raylet killed (SIGKILL) while both nodes run a configuration:
    the children it ran end FAILED saying their task was lost, the others finish on the
    head, and the sweep ends. Last in the module: the cluster has one node afterwards."""
    process = start_sweep(
        ray_nodes, tmp_path, "model.C=0.1,1,10,100", "evaluation.cv_folds=10", experiment="lost"
    )
    client = MlflowClient()
    running = wait_for_running_children(process, client, "lost", 2)
    assert len(running) == 2, "two configurations never ran at once"
    os.kill(ray_nodes.worker.raylet(), signal.SIGKILL)
    started = time.monotonic()
    out, err = finish(process, timeout=240)
    ended_after = time.monotonic() - started
    (parent,), children = runs_of("lost")
    statuses = sorted(c.info.status for c in children)
    assert len(children) == 4, (statuses, err[-3000:])
    assert "RUNNING" not in statuses
    lost = [c for c in children if "Ray task was lost" in c.data.tags.get("kit.error", "")]
    assert lost and all(c.info.status == "FAILED" for c in lost), err[-3000:]
    assert parent.info.status in ("FINISHED", "FAILED")
    assert parent.data.tags["sweep.failed"] == str(statuses.count("FAILED"))
    print(f"the sweep ended {ended_after:.1f} s after the node was killed; {statuses}")
