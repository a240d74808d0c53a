"""The Ray launcher's parts that need no cluster: what each configuration's task gets
from the driver's environment, and the refusals before a sweep's parent run exists
(the sweeps themselves: tests/e2e/test_ray_sweep.py)."""

from __future__ import annotations

import os
import socket

import pytest
from mlflow.tracking import MlflowClient

pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="the `ray` extra")

from logistic_regression import ray_launcher, train  # noqa: E402
from logistic_regression.environment import PARENT_VARIABLE  # noqa: E402
from logistic_regression.errors import ConfigError  # noqa: E402


def test_the_task_gets_the_store_its_credentials_and_the_parent(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret-password")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-key")
    monkeypatch.setenv("LOGREG_SPOOL_DIR", "/spool")
    monkeypatch.setenv("UNRELATED_SETTING", "x")
    monkeypatch.setenv(PARENT_VARIABLE, "parent123")
    forwarded = ray_launcher.forwarded_environment("sqlite:////abs/mlflow.db")
    assert forwarded["MLFLOW_TRACKING_URI"] == "sqlite:////abs/mlflow.db"
    assert forwarded["MLFLOW_TRACKING_PASSWORD"] == "s3cret-password"
    assert forwarded["AWS_SECRET_ACCESS_KEY"] == "aws-secret-key"
    assert forwarded["LOGREG_SPOOL_DIR"] == "/spool"
    assert forwarded[PARENT_VARIABLE] == "parent123"
    assert "UNRELATED_SETTING" not in forwarded and "PATH" not in forwarded


def test_the_environment_is_the_workers_own_again_after_the_job(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///worker.db")
    monkeypatch.delenv(PARENT_VARIABLE, raising=False)
    here = os.getcwd()
    variables = {"MLFLOW_TRACKING_URI": "sqlite:////driver.db", PARENT_VARIABLE: "p1"}
    with ray_launcher.environment_of(variables, str(tmp_path)):
        assert os.environ[PARENT_VARIABLE] == "p1"
        assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:////driver.db"
        assert os.getcwd() == str(tmp_path)
    assert PARENT_VARIABLE not in os.environ
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///worker.db"
    assert os.getcwd() == here
    with ray_launcher.environment_of({}, str(tmp_path / "not-on-this-node")):
        assert os.getcwd() == here  # the driver's folder is not on this node: stays put


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_cluster_address_where_nothing_answers_is_refused_before_the_parent(capsys):
    port = closed_port()
    code = train.main(
        [
            "-m",
            "tracking.experiment_name=ray-refused",
            "hydra/launcher=ray",
            f"hydra.launcher.ray.init.address=127.0.0.1:{port}",
            "model.C=1,2",
        ]
    )
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: hydra.launcher.ray.init.address=127.0.0.1:{port}: no Ray")
    assert MlflowClient().get_experiment_by_name("ray-refused") is None


def test_a_listening_address_and_rays_own_words_pass():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        ray_launcher.check_reachable(f"127.0.0.1:{server.getsockname()[1]}")
        ray_launcher.check_reachable(f"ray://127.0.0.1:{server.getsockname()[1]}")
    ray_launcher.check_reachable("auto")
    ray_launcher.check_reachable("")
    with pytest.raises(ConfigError, match="no Ray cluster answers"):
        ray_launcher.check_reachable(f"127.0.0.1:{closed_port()}", timeout_s=2)
