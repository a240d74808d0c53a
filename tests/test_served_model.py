"""The logged model on a real table (Palmer penguins, as the `palmerpenguins` package
ships it), read the way a user reads it: its labels, its probabilities through
`predict_method`, and one answer for a missing cell however it arrives."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import palmerpenguins
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from logistic_regression import train

PENGUINS = Path(palmerpenguins.__file__).parent / "data" / "penguins.csv"
SPECIES = ("Adelie", "Chinstrap", "Gentoo")


@pytest.fixture
def penguins():
    """A run on penguins.csv (species from the rest) and its logged model, as pyfunc."""
    settings = [f"data.input={PENGUINS}", "data.target=species", "evaluation.cv_folds=3"]
    assert train.main(settings) == 0
    client = MlflowClient()
    experiment = client.get_experiment_by_name("logistic-regression").experiment_id
    (run,) = client.search_runs([experiment])
    (logged,) = client.search_logged_models(experiment_ids=[experiment])
    return run, mlflow.pyfunc.load_model(f"models:/{logged.model_id}")


def test_probabilities_through_pyfunc_are_the_runs_own_and_sum_to_one(penguins):
    run, model = penguins
    recorded = pd.read_csv(run.data.tags["kit.output_path"])
    rows = pd.read_csv(PENGUINS).drop(columns="species").iloc[recorded["row"]]
    assert list(model.predict(rows)) == recorded["prediction"].tolist()

    answered = model.predict(rows, params={"predict_method": "predict_proba"})
    columns = ["prediction", *(f"probability_{name}" for name in SPECIES)]
    assert list(answered.columns) == columns
    assert answered["prediction"].tolist() == recorded["prediction"].tolist()
    probabilities = answered[columns[1:]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(probabilities, recorded[columns[1:]].to_numpy(), rtol=1e-12)

    with pytest.raises(MlflowException, match="predict_method='labels' is not allowed; use one"):
        model.predict(rows.head(1), params={"predict_method": "labels"})


def test_a_missing_cell_gets_one_answer_alone_or_beside_other_rows(penguins):
    """`sex` missing in one row: alone (a column of nothing but a null) and beside a row
    that has it (null beside text) the row is answered the same, as it is with NaN."""
    _, model = penguins
    ask = {"predict_method": "predict_proba"}
    row = {"island": "Dream", "bill_length_mm": 46.5, "bill_depth_mm": 17.9,
           "flipper_length_mm": 192.0, "body_mass_g": 3500.0, "year": 2007}  # fmt: skip
    other = {**row, "island": "Biscoe", "sex": "male", "body_mass_g": 5200.0}
    alone = model.predict(pd.DataFrame([{**row, "sex": None}]), params=ask)
    beside = model.predict(pd.DataFrame([{**row, "sex": None}, other]), params=ask)
    as_nan = model.predict(pd.DataFrame([{**row, "sex": np.nan}]), params=ask)
    typed = model.predict(
        pd.DataFrame([{**row, "sex": None}]).astype({"sex": "string"}), params=ask
    )
    for answer in (beside.iloc[[0]], as_nan, typed):
        pd.testing.assert_frame_equal(
            answer.reset_index(drop=True), alone, check_exact=False, rtol=1e-12
        )
