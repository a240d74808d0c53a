"""One redaction for every message (`uris.redact`), and the places the kit applies it in
process: what it refuses, prints, logs, stores in the spool and shows with `--cfg`.
(The whole story across processes, with a canary in each place: tests/e2e/test_secrets.py.)
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import time

import pytest
from conftest import committed_repo, git
from mlflow.tracking import MlflowClient

from logistic_regression import provenance, train, uris
from logistic_regression.recorded import _repository
from logistic_regression.storage.spool import RESULTS, Entry, Journal
from logistic_regression.storage.uploader import Engine, Settings
from logistic_regression.sweep import redact_saved_config

SECRET = "s3cr3t-CANARY-4f1e"


@pytest.mark.parametrize(
    "text, shown",
    [
        ("s3://AKID:" + SECRET + "@bucket/key.csv", "s3://***@bucket/key.csv"),
        ("read 'https://user:" + SECRET + "@h/x.csv' failed", "read 'https://***@h/x.csv' failed"),
        ("https://" + SECRET + "@github.com/org/repo.git", "https://***@github.com/org/repo.git"),
        ("postgresql://u:p@ss" + SECRET + "@db:5432/x", "postgresql://***@db:5432/x"),
        ("http://h/o?X-Amz-Signature=" + SECRET + "&X-Amz-Credential=AK%2F1&a=1",
         "http://h/o?X-Amz-Signature=***&X-Amz-Credential=***&a=1"),
        ("https://h/a?sig=" + SECRET + "&token=t0k3n&key=abc&api_key=k&password=p&secret=s",
         "https://h/a?sig=***&token=***&key=***&api_key=***&password=***&secret=***"),
        ("Authorization: Bearer " + SECRET, "Authorization: Bearer ***"),
        ("git@github.com:org/repo.git at http://host:5000/#/runs/1 key=value",
         "git@github.com:org/repo.git at http://host:5000/#/runs/1 key=value"),
    ],
)  # fmt: skip
def test_redact_hides_user_info_secret_parameters_and_credentials(text, shown):
    assert uris.redact(text) == shown


def test_credential_variables_and_registered_secrets_are_hidden_wherever_they_appear(
    monkeypatch,
):
    monkeypatch.setattr(uris, "_registered", set())  # what this test registers goes with it
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-" + SECRET)  # a name that says "secret"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "short")  # too short to hide in free text
    assert uris.redact(f"signing with {SECRET} failed") == "signing with *** failed"
    assert uris.redact(f"x=tok-{SECRET}") == "x=***"
    assert uris.redact("a short test") == "a short test"
    assert uris.redact("quoted " + SECRET.replace("-", "%2D")) == "quoted " + SECRET.replace(
        "-", "%2D"
    )  # only the exact value and its URL-encoded form (`-` needs none) are known

    hook = f"https://hooks.example.com/services/{SECRET}"
    uris.add_secret(hook)
    assert uris.redact(f"posting to {hook}") == "posting to ***"
    assert uris.redact(f"POST /services/{SECRET} 404") == "POST *** 404"  # its path alone
    tree = {"error": f"at {hook}", "items": [SECRET, 1.5], "n": None}
    assert uris.redact_tree(tree) == {"error": "at ***", "items": ["***", 1.5], "n": None}


@pytest.mark.parametrize(
    "variable",
    [
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_TRACKING_TOKEN",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
        "PGPASSWORD",
    ],
)
def test_a_tracking_servers_credentials_are_hidden(variable, monkeypatch):
    monkeypatch.setenv(variable, SECRET)
    assert variable in uris.CREDENTIAL_VARIABLES
    assert uris.redact(f"login {SECRET} refused") == "login *** refused"


def test_reveal_gives_the_real_uri_only_for_its_own_redaction(monkeypatch):
    real = f"http://user:{SECRET}@127.0.0.1:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", real)
    assert uris.reveal("http://***@127.0.0.1:5000") == real
    assert uris.reveal("http://***@127.0.0.1:5001") == "http://***@127.0.0.1:5001"
    assert uris.without_redacted_userinfo("https://***@h/r.git") == "https://h/r.git"


def test_install_redacts_what_libraries_print_and_log(monkeypatch, tmp_path):
    """Once installed, stdout, stderr and every log record (a file handler's too) are
    redacted, as MLflow's 'View run at <tracking URI>' line and Hydra's job logs need."""
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    saved_factory = logging.getLogRecordFactory()
    try:
        uris.install()
        uris.install()  # idempotent
        sys.stdout.write(f"View run at: http://u:{SECRET}@host/#/runs/1\n")
        print(f"s3://k:{SECRET}@b", file=sys.stderr)
        handler = logging.FileHandler(tmp_path / "job.log")
        logger = logging.getLogger("kit-test-redaction")
        logger.addHandler(handler)
        try:
            logger.warning("retrying %s", f"http://u:{SECRET}@host")
            try:
                raise RuntimeError(f"https://u:{SECRET}@host")
            except RuntimeError:
                logger.exception("failed")
        finally:
            logger.removeHandler(handler)
            handler.close()
    finally:
        logging.setLogRecordFactory(saved_factory)
    assert out.getvalue() == "View run at: http://***@host/#/runs/1\n"
    assert err.getvalue() == "s3://***@b\n"
    logged = (tmp_path / "job.log").read_text()
    assert "retrying http://***@host" in logged and "RuntimeError: https://***@host" in logged
    assert SECRET not in logged


@pytest.mark.parametrize(
    "override, refused",
    [
        (f"data.input=s3://AKID:{SECRET}@bucket/data.csv", "data.input='s3://***@bucket/data.csv'"),
        (f"data.output=s3://AKID:{SECRET}@bucket/out", "data.output='s3://***@bucket/out'"),
        (f"storage.endpoint=http://AKID:{SECRET}@127.0.0.1:9", "the S3 endpoint http://***@127"),
    ],
)
def test_credentials_in_a_uri_are_refused_before_the_run_in_one_redacted_line(
    override, refused, capsys
):
    assert train.main([override, "tracking.experiment_name=refused"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {refused}") and "carries credentials" in err
    assert SECRET not in err and len(err.strip().splitlines()) == 1
    assert MlflowClient().get_experiment_by_name("refused") is None  # no run exists


def test_cfg_job_resolve_never_prints_the_webhook(monkeypatch, capsys):
    monkeypatch.setenv("LOGREG_WEBHOOK_URL", f"https://hooks.example.com/{SECRET}")
    assert train.main(["--cfg", "job", "--resolve"]) == 0
    shown = capsys.readouterr()
    assert "webhook_url: '***'" in shown.out and "model:" in shown.out
    assert SECRET not in shown.out + shown.err
    assert train.main(["--cfg", "job"]) == 0  # unresolved: the interpolation, no secret
    assert "webhook_url: ${oc.env:LOGREG_WEBHOOK_URL" in capsys.readouterr().out


def test_hide_secret_settings_in_config_text():
    text = (
        "notify:\n  webhook_url: https://h/x\n  timeout_s: 5\n"
        "other:\n  webhook_url: ''\n  interp: ${oc.env:X}\n"
        "overrides:\n  - notify.webhook_url=https://h/y\n"
    )
    hidden = uris.hide_secret_settings(text, ["notify.webhook_url"])
    assert hidden == (
        "notify:\n  webhook_url: '***'\n  timeout_s: 5\n"
        "other:\n  webhook_url: ''\n  interp: ${oc.env:X}\n"
        "overrides:\n  - notify.webhook_url='***'\n"
    )


def test_a_sweeps_saved_config_is_rewritten_without_secrets(tmp_path):
    saved = tmp_path / "multirun.yaml"
    saved.write_text(
        f"notify:\n  webhook_url: https://h/{SECRET}\nhydra:\n  overrides:\n"
        f"    task:\n    - data.input=s3://k:{SECRET}@b/x.csv\n"
    )
    redact_saved_config(str(tmp_path))
    text = saved.read_text()
    assert SECRET not in text
    assert "webhook_url: '***'" in text and "data.input=s3://***@b/x.csv" in text


def test_a_remote_url_with_a_token_is_recorded_redacted_and_cloned_without_it(tmp_path):
    repo = committed_repo(tmp_path / "repo", {"f.txt": "x\n"})
    git(repo, "remote", "add", "origin", f"https://user:{SECRET}@example.invalid/org/kit.git")
    tags = provenance.tags(repo, provenance.git_state(repo), note=f"token {SECRET}?")
    assert tags[provenance.GIT_REPO_URL] == "https://***@example.invalid/org/kit.git"
    assert SECRET in tags[provenance.NOTE]  # plain text is not a URI: only env secrets go
    source = {provenance.SOURCE_NAME: tags[provenance.GIT_REPO_URL]}
    assert _repository(source) == ("https://example.invalid/org/kit.git", "")


def test_upload_errors_are_stored_redacted_and_uploads_connect_with_the_real_uri(
    tmp_path, monkeypatch
):
    """The spool records the tracking URI redacted; the uploader connects with the real
    one from MLFLOW_TRACKING_URI (the server sees its credentials), and the error it
    records (here the server's answer, which repeats the URI) is stored redacted."""
    import base64
    import http.server
    import threading

    seen: list[str] = []

    class Server(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            body = json.dumps({"error_code": "PERMISSION_DENIED", "message": f"no: {real}"})
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Server)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    real = f"http://user:{SECRET}@127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", real)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    folder = tmp_path / "spool" / "run"
    folder.mkdir(parents=True)
    (folder / "f.txt").write_text("data\n")
    entry = Entry(0, "f.txt", "mlflow-artifacts:/1/r/artifacts", "f.txt", 5, run_id="r")
    engine = Engine(folder, Settings(workers=1, max_attempts=1, tracking_uri=uris.redact(real)))
    try:
        engine.submit(entry)
        assert engine.wait(time.monotonic() + 120)
    finally:
        engine.close()
        server.shutdown()
        server.server_close()
    assert seen and seen[0] == "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode()
    (error,) = Journal.read(folder).errors.values()
    assert "no: http://***@127.0.0.1" in error, error
    assert SECRET not in (folder / RESULTS).read_text()


# What a terminal would act on: clear-screen, an OSC 8 link, an OSC 52 clipboard write,
# a carriage return that rewrites the line, a right-to-left override.
HOSTILE_NAME = (
    "run\x1b[2J\x1b]8;;http://evil.example\x07link\x1b]8;;\x07\x1b]52;c;ZXZpbA==\x07\r\u202e"
)


def _acted_on(text: str) -> list[str]:
    """Control characters a terminal acts on, colour codes (SGR) aside."""
    without_colour = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return re.findall(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", without_colour)


def test_control_characters_in_recorded_text_are_shown_escaped(capsys):
    """A run name, param, tag and metric experiment as someone else recorded them,
    shown by `inspect`, `best` and a one-line error: nothing reaches the terminal raw."""
    from conftest import recorded_run

    from logistic_regression.__main__ import main as cli

    run_id = recorded_run(
        "hostile", HOSTILE_NAME, {"model.C": "0.5", "data.input": HOSTILE_NAME},
        {"cv_roc_auc_mean": 0.9}, tags={"owner": HOSTILE_NAME},
    )  # fmt: skip
    cli(["inspect", run_id])
    cli(["inspect", "--experiment", "hostile"])
    cli(["best", "--experiment", "hostile"])
    assert cli(["best", "--experiment", HOSTILE_NAME]) == 2
    shown = capsys.readouterr()
    for text in (shown.out, shown.err):
        assert _acted_on(text) == [], text
    assert "run\\x1b[2J" in shown.out and "\\u202e" in shown.out
    assert "\\x1b]52;c;" in shown.out
    (error,) = [line for line in shown.err.splitlines() if line.startswith("error:")]
    assert "\\x1b[2J" in error


def test_printable_keeps_text_newlines_tabs_and_colour():
    assert (
        uris.printable("a\tb\nc \x1b[1;31mred\x1b[0m é 日本")
        == "a\tb\nc \x1b[1;31mred\x1b[0m é 日本"
    )
    assert uris.printable("x\x1b[2Jy\rz\x9b\u2067") == "x\\x1b[2Jy\\x0dz\\x9b\\u2067"
