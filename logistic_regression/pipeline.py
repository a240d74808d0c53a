"""One run, start to end: the orchestration of the pure steps and the edges.

    prepare   (preflight.py) config checked, tracking store reachable (within
              tracking.timeout_s), output and artifact stores usable, data loaded, model
              built, git read: everything that can be refused is refused there, before
              a run exists
    record    inside one MLflow run: params and dataset, evaluation, the model saved in
              the background, metrics, predictions, report and files into the spool
    settle    wait (bounded) for the uploads, then the run's honest end

`run` reads as that list; each step takes the typed `RunContext`. What the run prints
is console.py's.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf
from sklearn.pipeline import Pipeline

from logistic_regression import (
    console,
    data,
    evaluate,
    lifecycle,
    model,
    outputs,
    packages,
    preflight,
    provenance,
    report,
)
from logistic_regression.background import Background
from logistic_regression.config import PROJECT_DIR, Config
from logistic_regression.errors import KitError
from logistic_regression.storage.writer import ArtifactWriter
from logistic_regression.tracking import artifact_state, baselines, datasets, models, runs
from logistic_regression.uris import redact

log = logging.getLogger("logistic_regression")

# Package versions the report lists (environment.txt holds every package).
KEY_PACKAGES = ("mlflow", "scikit-learn", "numpy", "pandas", "scipy", "hydra-core", "boto3")


class ArtifactsPending(KitError):
    """Uploads did not all finish; the files wait in the spool for `sync`."""


@dataclass(frozen=True)
class RunContext:
    """One open run: what was prepared, where it records, and its background helpers."""

    prepared: preflight.Prepared
    run_id: str
    run_root: str
    params: dict[str, str]
    background: Background
    writer: ArtifactWriter

    @property
    def config(self) -> Config:
        return self.prepared.config

    @property
    def dataset(self) -> data.Dataset:
        return self.prepared.dataset


def run(
    config: Config,
    parent_run_id: str | None = None,
    on_open: Callable[[str], None] | None = None,
) -> console.RunSummary:
    """Train, evaluate, report and record one run; returns what the console prints (a run
    of its own prints its summary itself, before the webhook hears it finished).
    `parent_run_id`: record as a child of that run (a sweep's configuration).
    `on_open(run_id)`: told as soon as the run exists (a sweep records a configuration
    refused before that as a FAILED child of its own)."""
    # first: the worker forks single-threaded, and its warm-ups run while the run is prepared
    with Background(report.warm_up, models.warm_up) as background:
        prepared = preflight.prepare(config)
        with lifecycle.open_run(prepared, background, parent_run_id, on_open) as opened:
            context = RunContext(
                prepared=prepared,
                run_id=opened.run_id,
                run_root=opened.run_root,
                params=runs.config_params(preflight.recorded_config(config)),
                background=background,
                writer=opened.writer,
            )
            summary = record(context)
            settle(context)
            if parent_run_id is None:
                console.print_summary(summary)
    return summary


def metric_records(result: evaluate.Evaluation) -> list[tuple[str, float, int]]:
    """cv_<m>_mean/std, cv_<m>_per_fold at step k for fold k (one chart per metric, the
    folds as its points; a bare `cv_<m>`, as earlier kits named it, read as the CV score
    in the runs table though it held the last fold), test_<m>. Per-fold values are not
    logged again as separate metrics: thirty single-point charts crowded the run page;
    the report tables them."""
    records: list[tuple[str, float, int]] = []
    for name in result.metric_names:
        records.append((f"cv_{name}_mean", result.cv_mean(name), 0))
        records.append((f"cv_{name}_std", result.cv_std(name), 0))
        for k, fold in enumerate(result.folds, start=1):
            records.append((f"cv_{name}{runs.FOLD_SUFFIX}", fold[name], k))
        records.append((f"test_{name}", result.test[name], 0))
    return records


def record(context: RunContext) -> console.RunSummary:
    """The body of a run: everything logged, nothing waiting for the network.

    The final model is fitted first: its files, the predictions CSV and the charts need
    nothing else, so the background worker makes them while the folds are fitted (on a
    large table, formatting the predictions alone takes seconds)."""
    config, dataset, writer = context.config, context.dataset, context.writer
    installed = context.background.submit(packages.current, PROJECT_DIR)
    runs.log_params(context.run_id, context.params)
    datasets.log_dataset(
        dataset.frame,
        dataset.ref.uri,
        Path(dataset.ref.uri).name,
        config.data.target,
        dataset.ref.digest,
    )
    model_id, model_root = models.create_model(context.run_id, context.params)
    estimator = context.prepared.estimator
    fitted = evaluate.holdout(
        dataset, estimator, config.evaluation, config.seed, config.data.positive_label
    )
    # The final model is scored: the predictions, the charts and its files are made by
    # the background worker while the folds are fitted here, in the order they are needed
    # (a task the worker has not started when it is needed runs here).
    model_size = estimated_model_size(fitted.model, dataset.features.shape[1])
    model_folder = writer.model_folder(model_size)
    shown = charts_input(fitted)
    made = context.background.submit(outputs.predictions_csv, evaluate.predictions_table(fitted))
    charts = context.background.submit(report.plots, shown)
    saved = context.background.submit(
        models.save_model,
        fitted.model,
        fitted.split.X_train.head(5),
        str(model_folder),
        context.run_id,
        model_id,
        model_root,
    )
    result = evaluate.cross_validate(fitted, estimator, config.evaluation, config.seed)
    records = metric_records(result)
    runs.log_metrics(context.run_id, records)
    runs.log_tags(context.run_id, {RESULT_TAG: result_line(result, config)})
    baseline = baselines.compare_with_baseline(
        context.run_id, {k: v for k, v, step in records if not step}, dataset.ref.digest
    )
    predictions = made()
    output_path = outputs.write_predictions(predictions, config.data.output, context.run_id, writer)
    runs.log_tags(context.run_id, {OUTPUT_TAG: output_path})
    data_params = data_provenance(dataset, config.data.input)
    data_params["task"] = result.task
    data_params["classes"] = ", ".join(map(str, result.classes))
    # The class balance (rows per class, as JSON: labels may hold any text), for `compare`.
    data_params["class_counts"] = json.dumps(class_counts(fitted), ensure_ascii=False)
    if result.positive_label is not None:
        data_params["positive_label"] = str(result.positive_label)
    runs.log_params(context.run_id, data_params)
    noted = [baseline["note"]] if baseline and baseline.get("note") else []
    result = dataclasses.replace(result, warnings=[*dataset.warnings, *result.warnings, *noted])
    if result.warnings:
        runs.log_tags(context.run_id, {runs.WARNINGS_TAG: " | ".join(result.warnings)})
        for warning in result.warnings:
            log.warning(warning)

    environment = installed()
    recorded = {**data_params, "output_path": output_path}  # the report shows both
    whole = report_input(context, shown, fitted, result, recorded, environment, baseline)
    html = redact(report.render(whole, charts()))
    write_run_files(context, predictions, environment, html)
    writer.put_model(model_folder, model_root, model_id, saved, model_size)

    headline = config.evaluation.headline_metric
    return console.RunSummary(
        run_id=context.run_id,
        run_name=context.prepared.name,
        headline=headline,
        cv_mean=result.cv_mean(headline),
        cv_std=result.cv_std(headline),
        test_value=result.test[headline],
        report_uri=context.run_root + "/report.html",
        output_path=output_path,
        tracking_uri=context.prepared.tracking_uri,
    )


# The headline result as one value on the MLflow UI's run page (its metrics list the mean
# and the std apart, as two single-bar charts).
RESULT_TAG = "kit.result"
OUTPUT_TAG = "kit.output_path"  # where predictions.csv went


def result_line(result: evaluate.Evaluation, config: Config) -> str:
    """`CV roc_auc 0.9959 ± 0.0050 (5 folds) · test roc_auc 0.9954`."""
    name = config.evaluation.headline_metric
    return (
        f"CV {name} {result.cv_mean(name):.4f} ± {result.cv_std(name):.4f} "
        f"({len(result.folds)} folds) · test {name} {result.test[name]:.4f}"
    )


def charts_input(fitted: evaluate.Evaluation) -> report.Charts:
    """What the charts show: the held-out scores and the fitted model, known before the
    folds are fitted (so the background worker draws them meanwhile)."""
    return report.Charts(
        test=fitted.test,
        confusion=fitted.confusion,
        labels=[str(label) for label in fitted.classes],
        roc_curve=fitted.roc_curve,
        pr_curve=fitted.pr_curve,
        coefficients=model.coefficients(fitted.model),
        intercept=model.intercepts(fitted.model),
        positive_label=None if fitted.positive_label is None else str(fitted.positive_label),
    )


def report_input(
    context: RunContext,
    charts: report.Charts,
    fitted: evaluate.Evaluation,
    result: evaluate.Evaluation,
    data_params: dict[str, str],
    environment: packages.Environment,
    baseline: dict | None,
) -> report.ReportInput:
    """Everything the report shows, once the whole run is known. Provenance as the run
    holds it: under `mlflow run`, MLflow's values (source type PROJECT, its source name)
    stand for the keys it recorded first."""
    config = context.config
    stored = runs.recorded_tags(context.run_id)
    recorded = {key: stored.get(key, value) for key, value in context.prepared.tags.items()}
    return report.ReportInput.of(
        charts,
        run_id=context.run_id,
        run_name=context.prepared.name,
        note=config.tracking.note,
        params=context.params,
        folds=result.folds,
        headline=config.evaluation.headline_metric,
        experiment=config.tracking.experiment_name,
        train_rows=len(fitted.split.y_train),
        class_counts=class_counts(fitted),
        preprocessing=model.preprocessing_summary(fitted.model, context.dataset.features),
        provenance={**recorded, **data_params, "python": environment.python},
        packages={k: v for k, v in environment.packages.items() if k in KEY_PACKAGES},
        warnings=result.warnings,
        baseline=baseline,
    )


def class_counts(result: evaluate.Evaluation) -> dict[str, int]:
    """Rows per class over train and test together: the class balance the report shows."""
    labels = pd.concat([result.split.y_train, result.split.y_test])
    counts = labels.value_counts()
    return {str(label): int(counts.get(label, 0)) for label in result.classes}


def data_provenance(dataset: data.Dataset, given: str) -> dict[str, str]:
    """Where the data came from: `input` as given (for every run, as `mlflow run -P
    input=` records it), the URI read, its digest, ETag and version. Where predictions
    went is the tag OUTPUT_TAG: it holds the run id, and a param that differs in every
    run is one the MLflow UI's parallel-coordinates chart plots first."""
    params = {
        "input": given,
        "input_path": dataset.ref.uri,
        "input_digest": dataset.ref.digest,
    }
    if dataset.ref.etag:
        params["input_etag"] = dataset.ref.etag
    if dataset.ref.version:
        params["input_version"] = dataset.ref.version
    return params


def estimated_model_size(estimator: Pipeline, n_features: int) -> int:
    """About what the saved model takes in the spool: the pickled estimator, MLflow's
    files, and the input example (5 rows) in two JSON forms."""
    return len(pickle.dumps(estimator)) + 64 * 1024 + 5 * n_features * 64


def write_run_files(
    context: RunContext, predictions: bytes, environment: packages.Environment, html: str
) -> None:
    """The run's own files, written straight into the spool (queued without a copy)."""
    git = context.prepared.git
    files = {
        "features.txt": "\n".join(context.dataset.features.columns) + "\n",
        "config.yaml": OmegaConf.to_yaml(preflight.recorded_config(context.config)),
        "environment.txt": packages.lock(environment),
        "report.html": html,
    }
    if git is not None and git.dirty:
        files["uncommitted.patch"], hidden = provenance.redacted_patch(git.patch)
        if hidden:
            runs.log_tags(context.run_id, {provenance.PATCH_REDACTED: str(hidden)})
        if git.left_out:
            runs.log_tags(context.run_id, {provenance.LEFT_OUT: ", ".join(git.left_out)})
    contents = {"predictions.csv": predictions}
    contents.update({name: text.encode("utf-8") for name, text in files.items()})
    context.writer.put_bytes(contents, context.run_root, "the report and run files", "artifacts")


def settle(context: RunContext) -> None:
    """Wait (bounded) for every upload; models READY, the registry, or ArtifactsPending."""
    run_id, writer, registry = context.run_id, context.writer, context.config.registry
    stored = writer.flush()
    if stored.complete:
        for model_id in writer.journal.models:
            models.finalize_model(model_id)
    artifact_state.mark_artifacts(run_id, stored.pending)
    if stored.complete and registry.register:
        for model_id in writer.journal.models:
            version = models.register_model(model_id, registry.model_name)
            label = f"{registry.model_name}/{version}"
            runs.log_tags(run_id, {"kit.registered_model": label})
            print(f"Registered model {registry.model_name} version {version} (models:/{label})")
    if not stored.complete:
        reason = stored.errors[0] if stored.errors else "upload time limit reached"
        raise ArtifactsPending(
            f"{artifact_state.PENDING_ERROR}: {len(stored.pending)} of "
            f"{stored.uploaded + len(stored.pending)} files are kept in "
            f"{writer.folder} ({reason}); run `python -m logistic_regression sync` "
            "when the store is back"
        )
