"""Webhook notifications against a real HTTP server on 127.0.0.1, started by the test."""

from __future__ import annotations

import http.server
import json
import re
import threading

import mlflow
import pytest
from conftest import returns_within
from mlflow.tracking import MlflowClient

from logistic_regression import evaluate, notify, train
from logistic_regression.errors import DataError

SECRET = "T0KEN-do-not-leak-8f3a"


class Hook:
    """An HTTP server recording POST bodies; `mode` makes it answer, fail or hang."""

    def __init__(self, mode: str = "ok") -> None:
        self.bodies: list[dict] = []
        self.mode = mode
        self.released = threading.Event()  # a hanging hook answers only after stop()
        self.hanging = 0  # requests received and not answered yet
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                hook.bodies.append(json.loads(self.rfile.read(length)))
                if hook.mode == "hang":
                    hook.hanging += 1
                    hook.released.wait(300)
                    hook.hanging -= 1
                if hook.mode.startswith("redirect"):  # "redirect 302 <where>"
                    _, code, where = hook.mode.split(" ", 2)
                    self.send_response(int(code))
                    self.send_header("Location", where)
                    self.end_headers()
                    return
                self.send_response(500 if hook.mode == "error" else 200)
                self.end_headers()

            def do_GET(self) -> None:  # where a followed 302/303 would arrive
                hook.bodies.append({"GET": self.path})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{SECRET}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook(monkeypatch):
    server = Hook()
    monkeypatch.setenv("LOGREG_WEBHOOK_URL", server.url)
    yield server
    server.stop()


def everything_recorded(run_id: str) -> str:
    run = MlflowClient().get_run(run_id)
    artifacts = run.info.artifact_uri
    return "\n".join(
        [
            str(run.data.params),
            str(run.data.tags),
            mlflow.artifacts.load_text(f"{artifacts}/config.yaml"),
            mlflow.artifacts.load_text(f"{artifacts}/report.html"),
        ]
    )


def test_a_finished_run_posts_its_summary_and_never_records_the_url(hook, capsys, caplog):
    assert train.main(["tracking.experiment_name=notify", "model.C=0.5"]) == 0
    (body,) = hook.bodies
    run = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("notify").experiment_id]
    )[0]
    assert body["run_id"] == run.info.run_id and body["status"] == "FINISHED"
    assert body["metrics"]["cv_roc_auc_mean"] == run.data.metrics["cv_roc_auc_mean"]
    # A local store: no UI anyone else can open, so no link (not a guessed localhost one).
    assert "link" not in body and "http" not in body["text"]
    assert run.info.run_id[:8] in body["text"]
    recorded = everything_recorded(run.info.run_id)
    assert SECRET not in recorded and "***" in recorded  # stored redacted, never in clear
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err + caplog.text


def test_the_link_points_to_the_configured_ui(hook):
    ui = "https://mlflow.team.example/"
    assert train.main(["tracking.experiment_name=notify", f"notify.ui_url={ui}"]) == 0
    (body,) = hook.bodies
    run = MlflowClient().get_run(body["run_id"])
    page = (
        f"https://mlflow.team.example/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    )
    assert body["link"] == page and body["text"].endswith(f". {page}")


def test_a_run_on_a_tracking_server_links_to_that_server():
    link = notify.run_link("", "http://127.0.0.1:5005", "7", "abc")
    assert link == "http://127.0.0.1:5005/#/experiments/7/runs/abc"
    assert notify.run_link("", "sqlite:///mlflow.db", "7", "abc") == ""


def test_a_run_that_fails_inside_posts_failed_with_the_reason(hook, monkeypatch):
    def broken(*args, **kwargs):
        raise DataError("the features went missing")

    monkeypatch.setattr(evaluate, "cross_validate", broken)
    assert train.main(["tracking.experiment_name=notify"]) == 2
    (body,) = hook.bodies
    assert body["status"] == "FAILED" and body["error"] == "the features went missing"
    assert MlflowClient().get_run(body["run_id"]).info.status == "FAILED"


def test_what_the_hook_is_sent_is_redacted(hook, monkeypatch, capsys):
    """The error a failed run reports carries a URI with a password and a credential
    variable's value: the body sent (and everything printed) has them hidden."""
    password = "pw-" + SECRET
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-" + SECRET)

    def broken(*args, **kwargs):
        raise DataError(f"cannot read s3://AKID:{password}@b/x.csv with session-{SECRET}")

    monkeypatch.setattr(evaluate, "cross_validate", broken)
    assert train.main(["tracking.experiment_name=notify"]) == 2
    (body,) = hook.bodies
    assert body["error"] == "cannot read s3://***@b/x.csv with ***"
    assert SECRET not in json.dumps(body)
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err and "s3://***@b/x.csv" in out.err


def test_a_refused_config_creates_no_run_and_sends_nothing(hook):
    assert train.main(["model.C=-1"]) == 2
    assert hook.bodies == []


@pytest.mark.parametrize("mode", ["hang", "error"])
def test_a_webhook_that_hangs_or_fails_costs_a_warning_not_the_run(mode, caplog):
    server = Hook(mode)
    try:
        # A hook that hangs answers only when the test ends: `send` must give up on its
        # own timeout while the request is still unanswered (the bound of 60 s only turns
        # a hang into a failure; how fast a loaded machine is does not matter).
        delivered = returns_within(60, notify.send, server.url, {"text": "x"}, timeout=1.0)
        assert server.hanging == (1 if mode == "hang" else 0)
        assert len(server.bodies) == 1
    finally:
        server.stop()
    assert delivered is False
    if mode == "hang":  # the socket's timeout and the sender's wait race: either is a timeout
        assert re.search(r"did not answer within 1s|failed: TimeoutError", caplog.text)
    else:
        assert "HTTP Error 500" in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_webhook_redirect_is_not_followed_and_is_a_warning(code, caplog):
    elsewhere = Hook()  # another host the redirect names: it must hear nothing
    server = Hook(f"redirect {code} {elsewhere.url.replace(SECRET, 'stolen')}")
    try:
        delivered = returns_within(60, notify.send, server.url, {"text": "x"}, timeout=5.0)
    finally:
        server.stop()
        elsewhere.stop()
    assert delivered is False
    assert len(server.bodies) == 1 and elsewhere.bodies == []
    assert f"HTTP Error {code}" in caplog.text and "redirects are not followed" in caplog.text
    assert SECRET not in caplog.text


def test_a_webhook_redirect_to_another_scheme_is_not_followed(caplog):
    server = Hook("redirect 302 ftp://127.0.0.1:9/hook")
    try:
        assert returns_within(60, notify.send, server.url, {"text": "x"}, timeout=5.0) is False
    finally:
        server.stop()
    assert "HTTP Error 302" in caplog.text


def test_a_webhook_timeout_does_not_fail_the_run(monkeypatch):
    server = Hook("hang")
    monkeypatch.setenv("LOGREG_WEBHOOK_URL", server.url)
    try:
        code = train.main(["tracking.experiment_name=notify", "notify.timeout_s=1"])
        assert server.hanging == 1, "the run ended while its notification still hung"
    finally:
        server.stop()
    assert code == 0
    (run,) = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("notify").experiment_id]
    )
    assert run.info.status == "FINISHED"


def test_a_webhook_url_that_is_not_http_is_refused_without_showing_it(monkeypatch, capsys):
    monkeypatch.setenv("LOGREG_WEBHOOK_URL", f"ftp://example.invalid/{SECRET}")
    assert train.main([]) == 2
    err = capsys.readouterr().err
    assert "notify.webhook_url is not allowed" in err and SECRET not in err


def test_a_sweep_notifies_once_for_its_parent(hook):
    assert train.main(["-m", "tracking.experiment_name=notify-sweep", "model.C=0.1,1"]) == 0
    (body,) = hook.bodies
    client = MlflowClient()
    experiment = client.get_experiment_by_name("notify-sweep").experiment_id
    (parent,) = [
        r for r in client.search_runs([experiment]) if "mlflow.parentRunId" not in r.data.tags
    ]
    assert body["run_id"] == parent.info.run_id and body["status"] == "FINISHED"
    assert body["metrics"]["best_cv_roc_auc_mean"] == parent.data.metrics["best_cv_roc_auc_mean"]
