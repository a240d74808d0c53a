"""The team server over TLS, with a throwaway CA made here: `scripts/start_mlflow.sh`
serves HTTPS from `tls_certfile`/`tls_keyfile`; the kit records a whole run through it
with MLFLOW_TRACKING_SERVER_CERT_PATH naming the CA; without the CA, or over plain
HTTP, nothing gets through; a Host header or a browser origin other than the server's
own is refused."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest
import reaper
import requests
from conftest import PROJECT, PYTHON, new_store
from servers import free_port

SCRIPT = PROJECT / "scripts" / "start_mlflow.sh"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def throwaway_ca(folder: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate for 127.0.0.1 signed by it, server key)."""
    folder.mkdir()
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout",
            "ca.key", "-out", "ca.pem", "-subj", "/CN=kit test CA", cwd=folder)  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
            "server.csr", "-subj", "/CN=127.0.0.1", cwd=folder)  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", "server.pem", "-extfile", "san.ext",
            cwd=folder)  # fmt: skip
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


@pytest.fixture
def tls_server(tmp_path, migrated_store):
    ca, certificate, key = throwaway_ca(tmp_path / "ca")
    port = free_port()
    password = "ADMIN" + secrets.token_hex(8)
    password_file = tmp_path / "admin-password"
    password_file.write_text(password + "\n")
    settings = [
        "--port", str(port), f"state_dir={tmp_path / 'state'}",
        f"backend_store_uri={new_store(migrated_store, tmp_path / 'server.db')}",
        f"artifacts_destination={tmp_path / 'artifacts'}", "workers=1", "auth=true",
        f"tls_certfile={certificate}", f"tls_keyfile={key}",
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHON": PYTHON,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "LOGREG_SERVER_ADMIN_PASSWORD_FILE": str(password_file),
    }

    def script(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(SCRIPT), *args, *settings], env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip

    started = script("--background")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        reaper.track(int((tmp_path / "state" / "server.pid").read_text().split()[0]), reaper.GROUP)
        yield f"https://127.0.0.1:{port}", ca, ("admin", password)
    finally:
        stopped = script("--stop")
    assert stopped.returncode == 0, stopped.stderr


def test_the_kit_records_over_https_trusting_the_teams_ca(tls_server, tmp_path):
    url, ca, (user, password) = tls_server
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
    env |= {
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_TRACKING_USERNAME": user,
        "MLFLOW_TRACKING_PASSWORD": password,
        "MLFLOW_TRACKING_SERVER_CERT_PATH": str(ca),
        "LOGREG_SPOOL_DIR": str(tmp_path / "spool"),
    }
    done = subprocess.run(
        [PYTHON, "-m", "logistic_regression", "train", "tracking=team", f"tracking.uri={url}",
         "tracking.experiment_name=over-tls", f"data.output={tmp_path / 'outputs'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    login = (user, password)
    api = f"{url}/api/2.0/mlflow"
    found = requests.get(f"{api}/experiments/get-by-name", auth=login, verify=str(ca),
                         params={"experiment_name": "over-tls"}, timeout=60)  # fmt: skip
    experiment = found.json()["experiment"]["experiment_id"]
    searched = requests.post(f"{api}/runs/search", auth=login, verify=str(ca),
                             json={"experiment_ids": [experiment]}, timeout=60)  # fmt: skip
    (run,) = searched.json()["runs"]
    assert run["info"]["status"] == "FINISHED"
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["kit.artifacts"] == "complete", "the uploader went over TLS too"

    # Without the CA the certificate is refused; plain HTTP gets no answer from MLflow.
    env.pop("MLFLOW_TRACKING_SERVER_CERT_PATH")
    refused = subprocess.run(
        [PYTHON, "-m", "logistic_regression", "inspect", "--experiment", "over-tls"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr or "certificate" in refused.stderr
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(url.replace("https", "http") + "/health", timeout=30).raise_for_status()


def test_only_the_servers_own_names_and_origins_are_answered(tls_server):
    url, ca, login = tls_server
    endpoint = f"{url}/api/2.0/mlflow/experiments/search"
    ok = requests.get(endpoint, params={"max_results": 1}, auth=login, verify=str(ca), timeout=60)
    assert ok.status_code == 200, ok.text
    rebound = requests.get(endpoint, params={"max_results": 1}, auth=login, verify=str(ca),
                           headers={"Host": "intranet.evil.example"}, timeout=60)  # fmt: skip
    assert rebound.status_code in (400, 403), rebound.text
    private = requests.get(endpoint, params={"max_results": 1}, auth=login, verify=str(ca),
                           headers={"Host": "192.168.1.10:5000"}, timeout=60)  # fmt: skip
    assert private.status_code in (400, 403), "MLflow's default answers every private address"
    cross = requests.post(f"{url}/api/2.0/mlflow/experiments/create", auth=login,
                          verify=str(ca), json={"name": "from-a-web-page"},
                          headers={"Origin": "https://evil.example"}, timeout=60)  # fmt: skip
    assert cross.status_code in (400, 403), cross.text
