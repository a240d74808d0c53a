"""Model Registry and serving: a registered version, served by a real `mlflow models
serve` on a free loopback port, answers with the run's own predictions."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from conftest import PYTHON
from mlflow.tracking import MlflowClient
from servers import free_port

from logistic_regression import train


def test_register_then_serve_answers_like_the_runs_predictions(tmp_path):
    settings = ["registry.register=true", "registry.model_name=cancer"]
    assert train.main([*settings, "tracking.experiment_name=registry", "model.C=0.5"]) == 0
    assert train.main([*settings, "tracking.experiment_name=registry", "model.C=2"]) == 0
    client = MlflowClient()
    versions = sorted(client.search_model_versions("name = 'cancer'"), key=lambda v: int(v.version))
    assert [str(v.version) for v in versions] == ["1", "2"]
    first = client.get_run(versions[0].run_id)
    assert first.data.params["model.C"] == "0.5"
    assert first.data.tags["kit.registered_model"] == "cancer/1"

    predictions = pd.read_csv(first.data.tags["kit.output_path"])
    features = predictions.drop(columns=["row", "label", "prediction"]).filter(
        regex="^(?!probability_)"
    )
    answered = serve_and_ask("models:/cancer/1", features.to_dict(orient="split"))
    assert answered == predictions["prediction"].tolist()
    assert mlflow.pyfunc.load_model("models:/cancer/2").metadata.run_id == versions[1].run_id


def serve_and_ask(model_uri: str, split: dict, env: dict[str, str] | None = None) -> list:
    """Serve the model, send it the rows (pandas' "split" orient), return its answers."""
    with served(model_uri, env) as ask:
        return ask(split)


@contextlib.contextmanager
def served(model_uri: str, env: dict[str, str] | None = None):
    """The model served by `mlflow models serve` on a free loopback port (in `env`, this
    process's environment by default): yields `ask(split, params=None)`, which sends rows
    (and the request's params) and returns the answers; the server is stopped after."""
    port = free_port()
    server = subprocess.Popen(
        [
            PYTHON, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager",
            "local", "--host", "127.0.0.1", "-p", str(port),
        ],
        env=env or {**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip

    def ask(split: dict, params: dict | None = None) -> list:
        payload = {"dataframe_split": split, **({"params": params} if params else {})}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["predictions"]

    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as ping:
                    if ping.status == 200:
                        break
            assert time.monotonic() < deadline, "the model server did not come up"
            time.sleep(0.5)
        yield ask
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_a_served_model_answers_probabilities_and_one_answer_for_a_missing_cell(tmp_path):
    """Palmer penguins as its package ships it: the served model answers the rows
    pd.read_csv gives back with the run's labels and, asked for predict_proba, with the
    run's probabilities (summing to 1); a row with `sex` null gets the same answer alone
    and beside another row; another predict_method is a 400 naming the allowed ones."""
    from test_served_model import PENGUINS, SPECIES

    settings = [
        f"data.input={PENGUINS}", "data.target=species", "evaluation.cv_folds=3",
        "registry.register=true", "registry.model_name=penguins",
    ]  # fmt: skip
    assert train.main(settings) == 0
    (version,) = MlflowClient().search_model_versions("name = 'penguins'")
    predictions = pd.read_csv(MlflowClient().get_run(version.run_id).data.tags["kit.output_path"])
    rows = pd.read_csv(PENGUINS).drop(columns="species").iloc[predictions["row"]]
    split = json.loads(rows.to_json(orient="split", index=False))
    row = dict(zip(split["columns"], split["data"][0], strict=True))
    lone = {**row, "sex": None}
    other = {**row, "sex": "female", "island": "Biscoe"}
    columns = list(row)
    with served("models:/penguins/1") as ask:
        assert ask(split) == predictions["prediction"].tolist()
        answered = pd.DataFrame(ask(split, {"predict_method": "predict_proba"}))
        alone = ask(
            {"columns": columns, "data": [list(lone.values())]}, {"predict_method": "predict_proba"}
        )
        beside = ask(
            {"columns": columns, "data": [list(lone.values()), list(other.values())]},
            {"predict_method": "predict_proba"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            ask(split, {"predict_method": "labels"})
    probability = [f"probability_{name}" for name in SPECIES]
    assert list(answered.columns) == ["prediction", *probability]
    assert answered["prediction"].tolist() == predictions["prediction"].tolist()
    assert answered[probability].sum(axis=1).round(12).eq(1.0).all()
    assert (answered[probability] - predictions[probability].to_numpy()).abs().max().max() < 1e-12
    # the same answer (the probabilities to the last digits BLAS's batching leaves)
    assert alone[0]["prediction"] == beside[0]["prediction"]
    assert all(abs(alone[0][p] - beside[0][p]) < 1e-12 for p in probability)
    assert refused.value.code == 400
    assert "predict_method='labels' is not allowed" in refused.value.read().decode()


def test_a_served_multiclass_model_answers_with_the_users_labels_from_raw_rows(tmp_path):
    """Text labels, a text feature: rows with missing cells (JSON null) and a category
    never seen in training are answered with the user's own labels. The table is what
    Excel writes on Japanese Windows: Shift_JIS (cp932), Japanese column names and
    labels, which the served model takes and answers in."""
    rows = 60
    frame = pd.DataFrame(
        {
            "大きさ": [float(i % 3) * 2 + (i % 7) / 10 for i in range(rows)],
            "色": [["赤", "緑", "青"][i % 3] for i in range(rows)],
            "種": [["猫", "犬", "鰻"][i % 3] for i in range(rows)],
        }
    )
    frame.loc[[4, 9], "大きさ"] = None
    frame.loc[[5], "色"] = None
    frame.to_csv(tmp_path / "animals.csv", index=False, encoding="cp932")
    settings = [
        f"data.input={tmp_path / 'animals.csv'}",
        "data.encoding=cp932",
        "data.target='種'",
        "evaluation.cv_folds=3",
        "registry.register=true",
        "registry.model_name=animals",
    ]
    assert train.main(settings) == 0
    raw = {
        "columns": ["大きさ", "色"],
        "data": [[None, "赤"], [2.1, None], [4.0, "紫"], [0.1, "赤"]],
    }
    answered = serve_and_ask("models:/animals/1", raw)
    assert len(answered) == 4 and set(answered) <= {"猫", "犬", "鰻"}
    assert answered[3] == "猫"


def test_a_served_model_from_a_parquet_table_with_dates_takes_its_rows_read_back(tmp_path):
    """Dates (left out of the model), nullable integers with gaps, booleans, categories
    and whole numbers: the rows pd.read_parquet gives back from the training file, sent as
    JSON (`dataframe_split`, dates as ISO text, gaps as null), are answered as the run's
    own predictions. The server runs without this checkout on its path: the model
    brings the kit's code it runs (its casts) along."""
    from test_column_types import every_dtype

    path = tmp_path / "customers.parquet"
    every_dtype().to_parquet(path)
    settings = [
        f"data.input={path}",
        "data.target=label",
        "evaluation.cv_folds=3",
        "registry.register=true",
        "registry.model_name=customers",
    ]
    assert train.main(settings) == 0
    (version,) = MlflowClient().search_model_versions("name = 'customers'")
    predictions = pd.read_csv(MlflowClient().get_run(version.run_id).data.tags["kit.output_path"])
    rows = pd.read_parquet(path).drop(columns="label")
    split = json.loads(rows.to_json(orient="split", date_format="iso", index=False))
    assert None in [row[rows.columns.get_loc("visits")] for row in split["data"]]
    elsewhere = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    answered = serve_and_ask("models:/customers/1", split, env=elsewhere)
    assert [answered[row] for row in predictions["row"]] == predictions["prediction"].tolist()
    local = mlflow.pyfunc.load_model("models:/customers/1").predict(rows)
    assert answered == list(local)  # rows with gaps too
    folder = mlflow.artifacts.download_artifacts("models:/customers/1")
    shipped = {p.name for p in (Path(folder) / "code").rglob("*")}
    assert shipped == {"logistic_regression_casts", "__init__.py", "serving.py"}
