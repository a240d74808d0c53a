"""An `import` stopped by a real SIGTERM while it writes rows: the row it was on is not
left RUNNING, and importing the file again imports exactly the rows that were not
finished (the cut one included), no duplicate."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time

from conftest import PYTHON
from mlflow.tracking import MlflowClient

ROWS = 1000


def finished_runs(store: str) -> int:
    """How many rows are in, without waiting on the import's write lock (0 while held):
    a reader queued behind it let a loaded machine finish the whole import first."""
    try:
        with sqlite3.connect(store.removeprefix("sqlite:///"), timeout=0.01) as db:
            query = "select count(*) from runs where status = 'FINISHED'"
            return db.execute(query).fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_a_stopped_import_leaves_no_row_running_and_resumes(tmp_path, isolated_mlflow):
    sheet = tmp_path / "past.csv"
    sheet.write_text(
        "C,accuracy,owner\nparameter,metric,tag\n"
        + "".join(f"{i / 100},{0.5 + i / 1000},aiko\n" for i in range(ROWS))
    )
    command = [PYTHON, "-m", "logistic_regression", "import", str(sheet), "--experiment", "past"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": isolated_mlflow}
    process = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while finished_runs(isolated_mlflow) < 5:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the import never got going"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    client = MlflowClient(isolated_mlflow)
    experiment = client.get_experiment_by_name("past").experiment_id
    runs = client.search_runs([experiment], max_results=5000)
    assert runs and all(run.info.status in ("FINISHED", "KILLED") for run in runs), [
        run.info.status for run in runs if run.info.status not in ("FINISHED", "KILLED")
    ]
    finished = sum(run.info.status == "FINISHED" for run in runs)
    assert finished < ROWS, "the import ended before the signal: nothing was tested"

    again = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert f"imported {ROWS - finished} runs" in again.stdout
    runs = client.search_runs([experiment], filter_string="attributes.status = 'FINISHED'",
                              max_results=5000)  # fmt: skip
    digests = [run.data.tags["kit.import.digest"] for run in runs]
    assert len(digests) == ROWS and len(set(digests)) == ROWS
