"""The suite's own machinery: the per-test store is a migrated copy (never re-migrated),
and end-to-end work outside tests/e2e/ is caught."""

from __future__ import annotations

import subprocess

import mlflow.store.db.utils as db_utils
import mlflow.store.model_registry.sqlalchemy_store as registry_store
import pytest
from conftest import PYTHON, _starts_kit_or_mlflow, new_store
from mlflow.tracking import MlflowClient


def test_the_per_test_store_is_used_without_migrating(tmp_path, monkeypatch, migrated_store):
    calls = []

    def refuse(engine):
        calls.append(engine)
        raise AssertionError("MLflow migrated a store that should have been a migrated copy")

    monkeypatch.setattr(db_utils, "_initialize_tables", refuse)
    monkeypatch.setattr(registry_store, "_initialize_tables", refuse)
    client = MlflowClient(new_store(migrated_store, tmp_path / "copy.db"))
    experiment = client.create_experiment("copied")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "m", 1.0)
    client.create_registered_model("copied-model")
    assert client.get_run(run.info.run_id).data.metrics == {"m": 1.0}
    assert calls == []

    # The same check notices a store that is not migrated yet.
    with pytest.raises(AssertionError, match="migrated a store"):
        MlflowClient(f"sqlite:///{tmp_path / 'fresh.db'}").search_experiments()
    assert calls


def test_the_store_of_each_test_starts_empty():
    client = MlflowClient()
    assert [e.name for e in client.search_experiments()] == ["Default"]
    assert client.search_runs(["0"]) == []


@pytest.mark.parametrize(
    ("args", "caught"),
    [
        ([PYTHON, "-m", "mlflow", "run", "."], True),
        ([PYTHON, "-m", "logistic_regression.train"], True),
        ("mlflow server --port 5000", True),
        (["bash", "scripts/start_mlflow.sh", "--status"], True),
        (["git", "status"], False),
        ([PYTHON, "-c", "print('mlflow')"], False),
        ([PYTHON, "-m", "logistic_regression.uploader", "spool/run"], False),
    ],
)
def test_which_commands_count_as_end_to_end(args, caught):
    assert _starts_kit_or_mlflow(args) is caught


def test_starting_mlflow_outside_e2e_fails_the_test():
    with pytest.raises(pytest.fail.Exception, match="belongs under tests/e2e/"):
        subprocess.run([PYTHON, "-m", "mlflow", "--version"], capture_output=True)
    assert subprocess.run(["git", "--version"], capture_output=True).returncode == 0


def test_free_ports_are_below_the_range_outgoing_connections_take():
    from servers import _ephemeral_low, free_port

    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(10000 <= port < _ephemeral_low() for port in ports)


def test_a_port_taken_before_seaweedfs_binds_it_is_chosen_again(tmp_path):
    """The race CI met: another program listens on one of the chosen ports by the time
    weed binds it; weed dies with "address already in use" and the fixture starts it
    again on new ports, instead of failing every S3 test of the session."""
    import socket

    from servers import S3Server

    server = S3Server(tmp_path / "weed")
    taken = server.ports["volume.port"]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        try:
            server.start(("kit",))
            assert server.ports["volume.port"] != taken
            assert [b["Name"] for b in server.client().list_buckets()["Buckets"]] == ["kit"]
            first_log = (tmp_path / "weed" / "weed-port-taken-0.log").read_text()
            assert "address already in use" in first_log
        finally:
            server.stop()
