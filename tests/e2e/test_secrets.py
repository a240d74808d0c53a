"""No secret leaves the kit in clear. A canary (a unique string) is planted in each place a
secret can live: the user-info of an input URI (s3:// and https://), of the S3 endpoint
and of the tracking URI, the webhook URL (from the environment and from
conf/local/default.yaml) and AWS_SECRET_ACCESS_KEY (the SeaweedFS server's own secret).
The kit runs, fails, has its artifacts synced after an outage and reproduces a run; then
everything it wrote is searched: the tracking store (an SQLite dump), every file under
the test's folder (mlruns, the spool, outputs, the repository), every object in S3 (the
report included), every webhook body and every process's stdout and stderr. No canary
may be found anywhere. Real processes, a real S3 server, a real webhook receiver."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import PYTHON
from mlflow.tracking import MlflowClient
from servers import S3Server, WebhookReceiver, free_port, s3_objects

PLACES = ("s3input", "httpsinput", "endpoint", "tracking", "webhook", "localhook", "aws")


def kit(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, "-m", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(process: subprocess.Popen, outputs: list[str], timeout: float = 600) -> tuple:
    out, err = process.communicate(timeout=timeout)
    outputs.extend([out, err])
    return process.returncode, out, err


def wait_for_spooled_run(spool: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    """Until the run's spool journal exists: the run is open, its checks are passed."""
    import time

    deadline = time.monotonic() + timeout
    while not list(spool.glob("*/journal.jsonl")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never opened its spool folder"
        time.sleep(0.05)


def everything_written(tmp_path: Path, store: Path, skip: Path) -> dict[str, bytes]:
    """Every file under the test's folder (the store as an SQL dump; the S3 server's own
    files, which hold its secret key by design, left out)."""
    with sqlite3.connect(store) as db:
        found = {"tracking store (dump)": "\n".join(db.iterdump()).encode()}
    for path in tmp_path.rglob("*"):
        if path.is_file() and skip not in path.parents and path != store:
            found[str(path.relative_to(tmp_path))] = path.read_bytes()
    return found


@pytest.fixture
def canaries() -> dict[str, str]:
    return {place: f"CANARY{place.upper()}{secrets.token_hex(6)}" for place in PLACES}


def test_no_secret_is_printed_raised_tagged_reported_stored_or_sent(
    canaries, kit_repo, tmp_path, isolated_mlflow
):
    s3_base = tmp_path / "s3-server"
    server = S3Server(s3_base, secret_key=canaries["aws"])
    receiver = WebhookReceiver()
    outputs: list[str] = []
    store = Path(isolated_mlflow.removeprefix("sqlite:///"))
    try:
        server.start(buckets=("kit",))
        env = {
            **os.environ,
            **server.environment(),
            "LOGREG_WEBHOOK_URL": receiver.url(f"hooks/{canaries['webhook']}"),
        }
        s3_run = ["storage=s3", "storage.bucket=kit"]
        client = MlflowClient()

        # A run that finishes (artifacts in S3, the webhook told).
        done = finish(kit(["logistic_regression.train", *s3_run,
                           "tracking.experiment_name=canary"], kit_repo, env), outputs)  # fmt: skip
        assert done[0] == 0, done[2]
        experiment = client.get_experiment_by_name("canary").experiment_id
        (finished,) = client.search_runs([experiment])

        # A run whose store goes down: FAILED, its files kept in the spool, then synced.
        spool = Path(env["LOGREG_SPOOL_DIR"])
        training = kit(["logistic_regression.train", *s3_run, "tracking.experiment_name=outage",
                        "storage.flush_timeout_s=5", "storage.retry.max_attempts=2"],
                       kit_repo, env)  # fmt: skip
        wait_for_spooled_run(spool, training)
        server.freeze()
        server.stop()
        code, _, err = finish(training, outputs)
        assert code == 2 and "artifacts not stored" in err, err
        assert any(spool.glob("*/results.jsonl")), "the failed uploads were recorded"
        spooled_text = b"".join(p.read_bytes() for p in spool.rglob("*.jsonl"))
        server.start()
        code, out, err = finish(kit(["logistic_regression", "sync"], tmp_path, env), outputs)
        assert code == 0, out + err
        outage_id = client.get_experiment_by_name("outage").experiment_id
        (synced,) = client.search_runs([outage_id])
        assert synced.info.status == "FINISHED"

        # The finished run reproduced (a rerun through S3, which notifies too).
        code, out, err = finish(
            kit(
                [
                    "logistic_regression",
                    "reproduce",
                    finished.info.run_id,
                    "--trust",
                    str(kit_repo),
                ],
                tmp_path,
                env,
            ),  # fmt: skip
            outputs,
        )
        assert code == 0 and "verdict: reproduced" in out, out + err

        # Refusals and failures, each with a secret in what it is given. Two of them under
        # a run made beforehand, as `mlflow run` makes one: its kit.error tag is written.
        pending = {
            place: client.create_run(experiment, run_name=f"pending-{place}").info.run_id
            for place in ("s3input", "httpsinput")
        }
        given = {
            "s3input": ([f"data.input=s3://AKIDCANARY:{canaries['s3input']}@kit/data.csv"],
                        {"MLFLOW_RUN_ID": pending["s3input"]}),
            "httpsinput": ([f"data.input=https://user:{canaries['httpsinput']}@example.invalid/d.csv"],
                           {"MLFLOW_RUN_ID": pending["httpsinput"]}),
            "endpoint": ([*s3_run, "storage.endpoint="
                          f"http://AKID:{canaries['endpoint']}@127.0.0.1:{free_port()}"], {}),
            "tracking": ([], {"MLFLOW_TRACKING_URI":
                              f"http://user:{canaries['tracking']}@127.0.0.1:{free_port()}",
                              "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}),
            "webhook": (["--cfg", "job", "--resolve"], {}),
        }  # fmt: skip
        started = {
            place: kit(["logistic_regression.train", *args], kit_repo, {**env, **extra})
            for place, (args, extra) in given.items()
        }
        results = {place: finish(process, outputs) for place, process in started.items()}
        for place in ("s3input", "httpsinput", "endpoint"):
            code, _, err = results[place]
            assert code == 2 and err.startswith("error: ") and "://***@" in err, (place, err)
        assert results["tracking"][0] != 0 and "://***@127.0.0.1" in results["tracking"][2]
        assert results["webhook"][0] == 0 and "webhook_url: '***'" in results["webhook"][1]
        for place, run_id in pending.items():
            run = client.get_run(run_id)
            assert run.info.status == "FAILED", place
            assert "://***@" in run.data.tags["kit.error"], place

        # The webhook in the git-ignored conf/local/default.yaml, shown with --cfg.
        local = kit_repo / "conf" / "local" / "default.yaml"
        url = receiver.url(f"services/{canaries['localhook']}")
        local.write_text(f"# @package _global_\nnotify:\n  webhook_url: {url}\n")
        try:
            code, out, err = finish(
                kit(["logistic_regression.train", "--cfg", "job", "--resolve"], kit_repo, env),
                outputs,
            )
        finally:
            local.unlink()
        assert code == 0 and "webhook_url: '***'" in out, out + err

        objects = s3_objects(server)
    finally:
        receiver.stop()
        server.stop()

    bodies = [body for _, body in receiver.requests]
    assert {body["status"] for body in bodies} == {"FINISHED", "FAILED"}
    assert len(bodies) >= 3  # the finished run, the outage, the reproduction
    assert any(key.endswith(f"{finished.info.run_id}/artifacts/report.html") for key in objects)
    searched = {
        **{f"output {n}": text.encode() for n, text in enumerate(outputs)},
        **{f"webhook body {n}": json.dumps(body).encode() for n, body in enumerate(bodies)},
        **{f"S3 key {key}": key.encode() for key in objects},
        **{f"S3 object {key}": body for key, body in objects.items()},
        "spool journals and results (before sync)": spooled_text,
        **everything_written(tmp_path, store, s3_base),
    }
    leaks = [
        f"{place} secret in {where}"
        for where, data in searched.items()
        for place, canary in canaries.items()
        if canary.encode() in data
    ]
    assert not leaks, "\n".join(leaks)
    assert len(searched) > 20  # the search did cover what the kit wrote
