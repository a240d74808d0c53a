"""The MLflow UI as people see it: a real `mlflow server` started by the test, a kit run
recorded through it, and the run page and the report in the UI's artifact view opened in
headless Chromium at desktop and phone width (screenshots in test-artifacts/)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request

import pytest
from browser import WIDTHS, browser, screenshot, undecoded_images
from conftest import PYTHON, new_store, run_command
from mlflow.tracking import MlflowClient
from servers import free_port

NOTE = "ui check: C=0.5 on the demo data"


@pytest.fixture
def mlflow_server(tmp_path, migrated_store):
    """`mlflow server` on 127.0.0.1 (SQLite, served artifacts), stopped by its PID."""
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            new_store(migrated_store, tmp_path / "server.db"),
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
            "--workers",
            "1",
        ],
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its workers go with it
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "mlflow server did not answer /health"
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_the_run_page_and_the_report_in_the_artifact_view_render(mlflow_server, tmp_path):
    done = run_command(
        [PYTHON, "-m", "logistic_regression.train", "model.C=0.5", f"tracking.note='{NOTE}'"],
        cwd=tmp_path,
        env={"MLFLOW_TRACKING_URI": mlflow_server},
    )
    assert done.returncode == 0, done.stderr
    client = MlflowClient(mlflow_server)
    (run,) = client.search_runs(
        [client.get_experiment_by_name("logistic-regression").experiment_id]
    )
    page_url = f"{mlflow_server}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"

    # Desktop width only: the MLflow UI itself is not laid out for phones (its side panels
    # squeeze the run page at 420 px); the report alone is checked at phone width in
    # test_report_browser.py.
    with browser() as chromium:
        for label, width in [("desktop", WIDTHS["desktop"])]:
            page = chromium.new_page(viewport={"width": width, "height": 900})
            page.goto(page_url)
            # The run page: its name, status, the note as description, params, metrics.
            page.get_by_text("breast_cancer-target-C0.5-l2").first.wait_for(timeout=60_000)
            page.get_by_text(NOTE).first.wait_for(timeout=30_000)
            body = page.inner_text("body")
            assert "Finished" in body
            assert "cv_roc_auc_mean" in body
            screenshot(page, f"ui-run-page-{label}")

            # The report in the UI's artifact view (an iframe the UI fills from the server).
            page.goto(f"{page_url}/artifacts/report.html")
            report = None
            deadline = time.monotonic() + 60
            while report is None and time.monotonic() < deadline:
                for frame in page.frames[1:]:
                    try:
                        if run.info.run_id in frame.inner_text("body", timeout=1000):
                            report = frame
                    except Exception:  # a frame still loading
                        pass
                page.wait_for_timeout(500)
            assert report is not None, "the report did not render in the artifact view"
            text = report.inner_text("body")
            assert "0.9957 ± 0.0046" in text  # the headline CV metric, mean ± std
            assert NOTE in text
            assert undecoded_images(report) == []
            screenshot(page, f"ui-report-in-artifact-view-{label}")
            page.close()
