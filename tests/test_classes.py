"""Tables people bring: any class labels, three or more classes, categorical columns and
missing cells, each through a whole run in-process against a real SQLite store."""

import dataclasses
import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from logistic_regression import pipeline
from logistic_regression.config import METRIC_NAMES, MULTICLASS_METRIC_NAMES
from logistic_regression.errors import ConfigError, DataError

TARGETS = {
    "binary strings": ["no", "yes"],
    "binary booleans": [False, True],
    "multiclass strings": ["cat", "dog", "eel"],
    "multiclass integers": [3, 5, 7],
}
ROWS = 60


def table(labels: list, features: str = "both", seed: int = 0) -> pd.DataFrame:
    """A small table whose label depends on its features; gaps in the feature columns."""
    rng = np.random.default_rng(seed)
    y = np.array(labels, dtype=object)[np.arange(ROWS) % len(labels)]
    index = np.arange(ROWS) % len(labels)
    frame = pd.DataFrame({"id": np.arange(ROWS)})
    if features in ("both", "numeric"):
        frame["size"] = index * 2.0 + rng.normal(scale=0.8, size=ROWS)
        frame["weight"] = rng.normal(size=ROWS)
        frame.loc[[1, 7, 20], "size"] = np.nan
        frame.loc[[4], "weight"] = np.nan
    if features in ("both", "categorical"):
        colours = np.array(["red", "green", "blue", "grey"])
        noisy = np.where(rng.random(ROWS) < 0.8, index, rng.integers(0, 4, ROWS))
        frame["colour"] = colours[noisy].astype(object)
        frame["shape"] = rng.choice(["round", "square"], size=ROWS).astype(object)
        frame.loc[[2, 11], "colour"] = np.nan
    frame["label"] = pd.Series(y).astype(type(labels[0]))
    return frame


def run_on(config, tmp_path: Path, frame: pd.DataFrame, *overrides) -> tuple:
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    config = dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, input=str(path), target="label"),
        evaluation=dataclasses.replace(config.evaluation, cv_folds=3),
        preprocessing=dataclasses.replace(config.preprocessing, drop_columns=["id"]),
    )
    for change in overrides:
        config = change(config)
    summary = pipeline.run(config)
    return summary, MlflowClient().get_run(summary.run_id)


def logged_model(run):
    client = MlflowClient()
    (found,) = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    return mlflow.pyfunc.load_model(f"models:/{found.model_id}")


def artifacts(run) -> Path:
    return Path(run.info.artifact_uri.removeprefix("file://"))


@pytest.mark.parametrize("kind", TARGETS)
def test_any_labels_train_record_predict_and_report(config, tmp_path, kind):
    labels = TARGETS[kind]
    summary, run = run_on(config, tmp_path, table(labels))
    assert run.info.status == "FINISHED"

    names = METRIC_NAMES if len(labels) == 2 else MULTICLASS_METRIC_NAMES
    metrics = run.data.metrics
    for name in names:
        recorded = {f"test_{name}", f"cv_{name}_mean", f"cv_{name}_std", f"cv_{name}_per_fold"}
        assert recorded <= set(metrics) and f"cv_{name}" not in metrics, name
        folds = MlflowClient().get_metric_history(run.info.run_id, f"cv_{name}_per_fold")
        assert sorted(m.step for m in folds) == [1, 2, 3], name
    other_task = set(METRIC_NAMES) ^ set(MULTICLASS_METRIC_NAMES)
    assert not {f"test_{n}" for n in other_task if n not in names} & set(metrics)
    params = run.data.params
    assert params["classes"] == ", ".join(map(str, labels))
    assert params["task"] == ("binary" if len(labels) == 2 else "multiclass")
    if len(labels) == 2:
        assert params["positive_label"] == str(labels[-1])
    else:
        assert "positive_label" not in params

    predictions = pd.read_csv(summary.output_path)
    written = {str(v) for v in predictions["prediction"]} | {str(v) for v in predictions["label"]}
    assert written <= {str(label) for label in labels}
    assert [c for c in predictions if c.startswith("probability_")] == [
        f"probability_{label}" for label in labels
    ]
    assert "id" not in predictions and "colour" in predictions

    model = logged_model(run)
    schema = model.metadata.get_input_schema().inputs
    inputs = {spec.name: getattr(spec.type, "name", "Any") for spec in schema}
    assert inputs == {"size": "Any", "weight": "Any", "colour": "Any", "shape": "Any"}
    raw = pd.DataFrame(
        {
            "size": [np.nan, 0.1, 4.2],
            "weight": [0.3, np.nan, np.nan],
            "colour": ["red", np.nan, "violet"],  # a gap and a colour never seen
            "shape": ["round", "square", np.nan],
        }
    )
    answers = list(model.predict(raw))
    assert len(answers) == 3 and all(answer in labels for answer in answers)
    assert {type(answer) for answer in answers} <= {type(labels[0]), np.str_, np.bool_, np.int64}

    html = (artifacts(run) / "report.html").read_text()
    assert f"{len(labels)} classes:" in html
    for label in labels:
        assert f"<th>{label}</th>" in html, label  # the confusion matrix's columns
    assert "Preprocessing" in html and "one-hot encoded" in html


@pytest.mark.parametrize("features", ["numeric", "categorical"])
def test_each_kind_of_feature_with_gaps_trains_and_serves(config, tmp_path, features):
    summary, run = run_on(config, tmp_path, table(TARGETS["binary strings"], features))
    model = logged_model(run)
    if features == "numeric":
        raw = pd.DataFrame({"size": [np.nan, 3.0], "weight": [np.nan, 0.2]})
        columns_out = 2
    else:
        raw = pd.DataFrame({"colour": [np.nan, "violet"], "shape": ["round", np.nan]})
        columns_out = 4 + 2
    assert set(model.predict(raw)) <= {"no", "yes"}
    html = (artifacts(run) / "report.html").read_text()
    assert f"{columns_out} columns out to the classifier" in html
    assert f"{ROWS} rows and 2 feature columns in" in html
    features_txt = (artifacts(run) / "features.txt").read_text().split()
    assert sorted(features_txt) == sorted(raw.columns)


def test_the_report_counts_imputed_cells_and_categories(config, tmp_path):
    """3 + 1 numeric gaps and 2 categorical ones; colours grouped below min_frequency."""

    def rare_colours(cfg):
        prep = dataclasses.replace(cfg.preprocessing, min_frequency=200)
        return dataclasses.replace(cfg, preprocessing=prep)

    summary, run = run_on(config, tmp_path, table(TARGETS["binary strings"]), rare_colours)
    html = (artifacts(run) / "report.html").read_text()
    rows = {}
    for line in html.splitlines():
        cells = re.findall(r"<td[^>]*>([^<]*)</td>", line)
        if len(cells) == 5 and cells[1] in ("numeric", "categorical"):
            rows[cells[0]] = cells[1:]
    assert rows["size"] == ["numeric", "3", "-", "-"]
    assert rows["weight"] == ["numeric", "1", "-", "-"]
    assert rows["colour"] == ["categorical", "2", "4", "4"]  # every colour under 200 rows
    assert rows["shape"] == ["categorical", "0", "2", "2"]
    assert "colour_infrequent_sklearn" in html  # coefficients name the encoded features


def test_the_positive_label_is_configurable_and_recorded(config, tmp_path):
    def positive_no(cfg):
        return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, positive_label="no"))

    _, run = run_on(config, tmp_path, table(TARGETS["binary strings"]), positive_no)
    assert run.data.params["positive_label"] == "no"
    assert run.data.params["data.positive_label"] == "no"
    html = (artifacts(run) / "report.html").read_text()
    assert "positive class <code>no</code>" in html


def _with(group: str, **change):
    def apply(cfg):
        return dataclasses.replace(
            cfg, **{group: dataclasses.replace(getattr(cfg, group), **change)}
        )

    return apply


@pytest.mark.parametrize(
    ("labels", "change", "error", "message"),
    [
        (
            TARGETS["multiclass strings"],
            _with("evaluation", headline_metric="f1"),
            ConfigError,
            "evaluation.headline_metric (multiclass target)='f1' is not allowed; choose one of: "
            "accuracy, roc_auc, log_loss, f1_macro",
        ),
        (
            TARGETS["multiclass strings"],
            _with("sweep", metric="cv_recall_mean"),
            ConfigError,
            "sweep.metric (multiclass target)='cv_recall_mean' is not allowed",
        ),
        (
            TARGETS["binary strings"],
            _with("evaluation", headline_metric="f1_macro"),
            ConfigError,
            "evaluation.headline_metric (binary target)='f1_macro' is not allowed",
        ),
        (
            TARGETS["multiclass integers"],
            _with("model", solver="liblinear"),
            ConfigError,
            "model.solver='liblinear' cannot fit a multinomial model",
        ),
        (
            TARGETS["binary strings"],
            _with("data", positive_label="maybe"),
            DataError,
            "data.positive_label='maybe' is not a label of the target; its labels are: no, yes",
        ),
        (
            TARGETS["multiclass strings"],
            _with("evaluation", cv_folds=25),
            DataError,
            "evaluation.cv_folds=25 with evaluation.test_size=0.2 needs more rows",
        ),
    ],
)
def test_what_the_task_cannot_do_is_refused_before_the_run(
    config, tmp_path, labels, change, error, message
):
    with pytest.raises(error) as caught:
        run_on(config, tmp_path, table(labels), change)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert (
        MlflowClient().search_runs([e.experiment_id for e in MlflowClient().search_experiments()])
        == []
    )


def test_a_builtin_multiclass_dataset_runs_by_name(config):
    config = dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, input="iris"),
        evaluation=dataclasses.replace(config.evaluation, cv_folds=3),
    )
    summary = pipeline.run(config)
    run = MlflowClient().get_run(summary.run_id)
    assert run.data.params["classes"] == "0, 1, 2"
    assert run.data.metrics["test_f1_macro"] > 0.8


def test_reproduce_replays_the_preprocessing_and_positive_label(config, tmp_path):
    """`reproduce` reruns with the recorded config: lists of columns (names with spaces,
    commas and quotes) and the positive label come back as they were."""
    from omegaconf import OmegaConf

    from logistic_regression.config import compose_config
    from logistic_regression.reproduce import Recorded, replay_overrides

    config = dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, positive_label="True"),
        preprocessing=dataclasses.replace(
            config.preprocessing,
            drop_columns=["id", "row, number"],
            categorical_columns=["zip code", "it's"],
            numeric_impute="median",
            min_frequency=5,
            max_categories=10,
        ),
    )
    recorded = Recorded(
        "r1", "n", "0", "", "", "c", False,
        OmegaConf.to_container(OmegaConf.structured(config)),
        "breast_cancer", "", {}, {}, None, {},
    )  # fmt: skip
    replayed = compose_config(replay_overrides(recorded, tmp_path / "out"))
    assert replayed.preprocessing == config.preprocessing
    assert replayed.data.positive_label == "True"
