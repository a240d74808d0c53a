"""One whole run in-process against a real SQLite store: what every run records."""

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from logistic_regression import data, evaluate, model, pipeline, provenance, train
from logistic_regression.config import PROJECT_DIR
from logistic_regression.errors import ConfigError, DataError


def run_files(artifact_uri: str) -> set[str]:
    root = Path(artifact_uri.removeprefix("file://"))
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_a_run_records_everything_needed_to_reproduce_it(config):
    config = dataclasses.replace(
        config, tracking=dataclasses.replace(config.tracking, note="first try <b>bold</b>")
    )
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, C=0.5))
    summary = pipeline.run(config)
    client = MlflowClient()
    run = client.get_run(summary.run_id)

    assert run.info.status == "FINISHED"
    assert run.info.run_name == "breast_cancer-target-C0.5-l2"  # table, target, model
    # the headline as one value on the run page: mean ± std over the folds, and test
    metrics = run.data.metrics
    assert run.data.tags["kit.result"] == (
        f"CV roc_auc {metrics['cv_roc_auc_mean']:.4f} ± {metrics['cv_roc_auc_std']:.4f} "
        f"(5 folds) · test roc_auc {metrics['test_roc_auc']:.4f}"
    )
    assert client.get_experiment(run.info.experiment_id).name == "logistic-regression"
    params = run.data.params
    assert params["model.C"] == "0.5" and params["model.penalty"] == "l2"
    assert params["evaluation.cv_folds"] == "5" and params["run.seed"] == "42"
    assert params["input_path"] == "breast_cancer"
    assert params["class_counts"] == '{"0": 212, "1": 357}'  # every labelled row
    assert run.data.tags["kit.output_path"] == summary.output_path
    assert "output_path" not in params and params["input"] == "breast_cancer"
    assert Path(summary.output_path).is_file()

    tags = run.data.tags
    assert tags["mlflow.note.content"] == "first try <b>bold</b>"
    state = provenance.git_state(PROJECT_DIR)
    assert tags["mlflow.source.git.commit"] == state.commit
    assert tags["mlflow.source.git.dirty"] == str(state.dirty).lower()
    assert tags["mlflow.source.name"] == provenance.source_name(PROJECT_DIR, state)

    metrics = run.data.metrics
    for name in ("accuracy", "roc_auc", "log_loss", "f1", "precision", "recall"):
        assert f"test_{name}" in metrics
        folds = [m.value for m in client.get_metric_history(summary.run_id, f"cv_{name}_per_fold")]
        assert metrics[f"cv_{name}_mean"] == pytest.approx(sum(folds) / 5)
    # Each fold once, as a step of cv_<m>: no single-point per-fold charts on the run page.
    assert not any("_fold_" in name for name in metrics)
    assert not any(name.startswith("vs_baseline_") for name in metrics), "no baseline here"
    assert "kit.baseline_run_id" not in tags
    history = client.get_metric_history(summary.run_id, "cv_roc_auc_per_fold")
    assert sorted(m.step for m in history) == [1, 2, 3, 4, 5]
    assert summary.cv_mean == metrics["cv_roc_auc_mean"]

    files = run_files(run.info.artifact_uri)
    assert {
        "report.html",
        "predictions.csv",
        "features.txt",
        "config.yaml",
        "environment.txt",
    } <= files
    assert ("uncommitted.patch" in files) == state.dirty
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    html = (artifacts / "report.html").read_text()
    assert "first try &lt;b&gt;bold&lt;/b&gt;" in html
    # no row of zeros per complete numeric column, no l1_ratio on an l2 run
    assert "30 numeric columns had no missing cells." in html and "l1_ratio" not in html
    assert "C: 0.5" in (artifacts / "config.yaml").read_text()
    assert len((artifacts / "features.txt").read_text().splitlines()) == 30
    predictions = pd.read_csv(artifacts / "predictions.csv")
    assert len(predictions) == 114

    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest == params["input_digest"][:36]
    models = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert [m.source_run_id for m in models] == [summary.run_id]


def test_reruns_give_identical_metrics(config):
    first = MlflowClient().get_run(pipeline.run(config).run_id).data.metrics
    second = MlflowClient().get_run(pipeline.run(config).run_id).data.metrics
    assert first == second
    # And a run records exactly the pipeline's values (a per-fold series shows its last
    # step in a run's metrics); test_model_and_evaluate checks those, bit for bit, against
    # tests/breast_cancer_metrics.json on the kernels that recorded it.
    dataset = data.load(config.data.input, config.data.target)  # the default: no column lists
    estimator = model.build(config.model, config.seed, config.preprocessing, dataset.features)
    result = evaluate.evaluate(dataset, estimator, config.evaluation, config.seed)
    latest: dict[str, tuple[int, float]] = {}
    for name, value, step in pipeline.metric_records(result):
        if step >= latest.get(name, (-1, 0.0))[0]:
            latest[name] = (step, value)
    assert first == {name: value for name, (_, value) in latest.items()}


@pytest.mark.parametrize(
    ("group", "change", "error"),
    [
        ("model", {"C": -1.0}, ConfigError),
        ("data", {"input": "nowhere.csv"}, DataError),
        ("data", {"target": "species"}, DataError),
    ],
)
def test_bad_input_creates_no_run(config, group, change, error):
    bad = dataclasses.replace(
        config, **{group: dataclasses.replace(getattr(config, group), **change)}
    )
    with pytest.raises(error):
        pipeline.run(bad)
    assert MlflowClient().search_experiments(filter_string="name = 'logistic-regression'") == []


@pytest.mark.parametrize(("override", "says"), [
    ("model.C=abc", "model.C: 'abc' is not a number (such as 0.5)"),
    ("seed=1.5", "seed: '1.5' is not a whole number (such as 5)"),
    ("registry.register=maybe", "registry.register: 'maybe' is not true or false"),
])  # fmt: skip
def test_cli_bad_value_is_one_line_exit_2(capsys, override, says):
    assert train.main([override]) == 2
    assert capsys.readouterr().err.strip() == f"error: invalid value for {says}"


def test_register_without_a_name_is_refused_before_the_run(capsys):
    assert train.main(["registry.register=true", "registry.model_name="]) == 2
    assert "registry.model_name is empty" in capsys.readouterr().err


def test_a_run_that_fails_after_its_model_was_created_leaves_no_model_pending(monkeypatch):
    """The logged model exists from the start of the run; a failure before its files
    were handed over (here the folds' fit) ends it FAILED with the run, not PENDING for
    ever."""

    def broken(*args, **kwargs):
        raise RuntimeError("the folds could not be fitted")

    monkeypatch.setattr(evaluate, "cross_validate", broken)
    assert train.main(["tracking.experiment_name=model-left"]) == 1  # unexpected: a bug
    client = MlflowClient()
    experiment = client.get_experiment_by_name("model-left").experiment_id
    (run,) = client.search_runs([experiment])
    assert run.info.status == "FAILED"
    (model,) = client.search_logged_models(experiment_ids=[experiment])
    assert str(model.status) == "FAILED"


def test_a_japanese_excel_csv_trains_end_to_end_and_is_recorded_as_stored(tmp_path, capsys):
    """What Excel writes on Japanese Windows, here with ; and decimal commas as well:
    Shift_JIS (cp932) bytes, Japanese column names and labels. Read with the overrides
    the refusal names, the run keeps every name and label as written, and records the
    digest of the file's bytes; reproduce reads it back with the recorded settings."""
    import hashlib

    import numpy as np

    from logistic_regression.recorded import check_data, read_recorded

    rng = np.random.default_rng(3)
    table = pd.DataFrame(
        {
            "長さ": np.round(rng.normal(size=60), 3),
            "色": np.tile(["赤", "青", "緑"], 20),
            "判定": np.tile(["合格", "不合格"], 30),
        }
    )
    path = tmp_path / "結果.csv"
    path.write_bytes(table.to_csv(index=False, sep=";", decimal=",").encode("cp932"))
    args = [f"data.input='{path}'", "data.target='判定'", "data.output=out"]

    assert train.main(args) == 2
    assert "data.encoding=cp932" in capsys.readouterr().err
    assert train.main([*args, "data.encoding=cp932"]) == 2
    assert "data.sep=';' and data.decimal=','" in capsys.readouterr().err
    assert train.main([*args, "data.encoding=cp932", "data.sep=';'", "data.decimal=','"]) == 0

    client = MlflowClient()
    experiment = client.get_experiment_by_name("logistic-regression")
    (run,) = client.search_runs([experiment.experiment_id])
    params = run.data.params
    assert params["data.target"] == "判定" and params["classes"] == "不合格, 合格"
    assert params["data.encoding"] == "cp932" and params["data.decimal"] == ","
    assert params["input_digest"] == hashlib.sha256(path.read_bytes()).hexdigest()
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert (artifacts / "features.txt").read_text().split() == ["長さ", "色"]
    predictions = pd.read_csv(artifacts / "predictions.csv")
    assert {"probability_合格", "probability_不合格", "色"} <= set(predictions.columns)
    assert set(predictions["prediction"]) <= {"合格", "不合格"}
    assert predictions["長さ"].dtype == "float64"  # decimal commas read as numbers
    report = (artifacts / "report.html").read_text()
    assert "判定" in report and "合格" in report and "色" in report

    check_data(read_recorded(client, run.info.run_id, tmp_path))  # read as recorded


def test_runs_on_two_tables_or_targets_are_named_apart(tmp_path):
    """Every default run was `logreg-C1-l2` whatever the data."""
    from logistic_regression.config import compose_config
    from logistic_regression.preflight import run_name

    def named(*overrides: str) -> str:
        return run_name(compose_config(list(overrides)))

    assert named("data.input=s3://team/tables/penguins.csv.gz", "data.target=species") == (
        "penguins-species-C1-l2"
    )
    assert named("data.input=s3://team/tables/penguins.csv.gz", "data.target=island") == (
        "penguins-island-C1-l2"
    )
    assert named("data.input=/data/titanic.parquet", "data.target=survived", "model.C=0.5") == (
        "titanic-survived-C0.5-l2"
    )
    assert named("tracking.run_name=mine") == "mine"


def test_two_runs_differ_in_the_params_the_ui_plots_first_only_where_they_differ(capsys):
    """The MLflow UI's compare page starts its parallel-coordinates chart with the first
    three params that differ between the runs, sorted (its JS: diffParamKeys.sort()
    .slice(0, 3)): for two runs that differ in C, that is model.C alone, not a per-run
    path or a param only one of them has."""
    assert train.main(["model.C=0.5"]) == 0 and train.main(["model.C=2"]) == 0
    client = MlflowClient()
    experiment = client.get_experiment_by_name("logistic-regression").experiment_id
    a, b = (run.data.params for run in client.search_runs([experiment]))
    differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    assert differing[:3] == ["model.C"]
