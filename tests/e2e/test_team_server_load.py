"""The team server under a team's load: 16 runs from 8 client processes at once (each
trains twice in a row), all through one authenticating server (two workers) on
PostgreSQL and S3. Every run ends FINISHED with its artifacts and model stored, the ids
are distinct, and nothing is left RUNNING. A module of its own: it starts its own
server and is the slowest of the team tests (minutes on two cores)."""

from __future__ import annotations

import threading

from team_setup import (  # noqa: F401 - team_fixture: the module's `team`
    WRITER,
    assert_no_secret,
    client_env,
    logged_in,
    team_fixture,
    train,
)

CLIENTS, RUNS_EACH = 8, 2
EXPERIMENT = "team-load"


def test_sixteen_runs_from_eight_clients_all_finish_with_their_files(team, tmp_path):
    failures: list[str] = []

    def client(index: int) -> None:
        folder = tmp_path / f"client-{index}"
        folder.mkdir()
        env = client_env(folder, WRITER, team.passwords[WRITER])
        for _ in range(RUNS_EACH):
            done = train(team, folder, env, EXPERIMENT)
            if done.returncode != 0:
                failures.append(f"client {index}: exit {done.returncode}: {done.stderr[-1500:]}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(900)
    assert not any(thread.is_alive() for thread in threads), "a client hung"
    assert not failures, "\n".join(failures)

    with logged_in("admin", team.admin_password):
        client = team.admin()
        experiment = client.get_experiment_by_name(EXPERIMENT)
        runs = client.search_runs([experiment.experiment_id], max_results=100)
        assert len(runs) == CLIENTS * RUNS_EACH
        assert len({run.info.run_id for run in runs}) == CLIENTS * RUNS_EACH
        assert {run.info.status for run in runs} == {"FINISHED"}, "nothing RUNNING or FAILED"
        assert {run.data.tags["kit.artifacts"] for run in runs} == {"complete"}
        for run in runs:
            listed = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert {"report.html", "config.yaml"} <= listed, (run.info.run_id, listed)
        models = client.search_logged_models(experiment_ids=[experiment.experiment_id])
        assert len(models) == CLIENTS * RUNS_EACH
        assert {str(model.status) for model in models} == {"READY"}
        assert {model.source_run_id for model in models} == {run.info.run_id for run in runs}
    assert not any(tmp_path.glob("client-*/spool/*/journal.jsonl")), "nothing left to sync"
    assert_no_secret(team, team.outputs)
