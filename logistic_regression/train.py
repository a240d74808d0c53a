"""Entry point: `python -m logistic_regression.train [hydra overrides]`.

Reads like the data flow: compose and validate the config, load the data, build the
model, then inside one MLflow run evaluate, report and record everything. Anything that
can be known to be wrong is refused before the run is created.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from logistic_regression import (
    data,
    evaluate,
    model,
    outputs,
    provenance,
    report,
    tracking,
)
from logistic_regression.background import Background
from logistic_regression.config import Config, public, validate
from logistic_regression.errors import ConfigError, KitError, first_line
from logistic_regression.storage import s3
from logistic_regression.storage.writer import ArtifactWriter

CONF_DIR = provenance.PROJECT_DIR / "conf"
DEBUG_VARIABLE = "LOGREG_DEBUG"
log = logging.getLogger("logistic_regression")


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    run_name: str
    headline: str
    cv_mean: float
    cv_std: float
    test_value: float
    report_uri: str
    output_path: str


def conf_dir() -> Path:
    for candidate in (CONF_DIR, Path.cwd() / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise ConfigError(f"no conf/config.yaml found beside the package or in {Path.cwd()}")


def compose_config(overrides: list[str]) -> Config:
    """Compose `conf/` with Hydra overrides into the typed config; errors become one line."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            composed = compose(config_name="config", overrides=overrides)
        return OmegaConf.to_object(composed)
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        raise ConfigError(_one_line(exc)) from exc


def _one_line(exc: BaseException) -> str:
    """The useful line of a Hydra/OmegaConf error: the innermost cause, with its key."""
    inner = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    key = getattr(inner, "full_key", None)
    message = (getattr(inner, "msg", None) or str(inner)).strip().splitlines()
    text = message[0] if message else type(inner).__name__
    outer = str(exc).strip().splitlines()
    if key:
        return f"invalid value for {key}: {text}"
    return outer[0] if outer else text


def run_name(config: Config) -> str:
    if config.tracking.run_name:
        return config.tracking.run_name
    m = config.model
    if m.penalty == "none":
        return "logreg-nopenalty"
    suffix = f"{m.penalty}{m.l1_ratio:g}" if m.penalty == "elasticnet" else m.penalty
    return f"logreg-C{m.C:g}-{suffix}"


def public_config(config: Config) -> dict:
    """The resolved config as plain data, secrets replaced by `***`: what is recorded."""
    return public(OmegaConf.to_container(OmegaConf.structured(config)))


def config_params(resolved: dict) -> dict[str, str]:
    """The resolved config as `group.key` params; top-level values (seed) as `run.<key>`,
    since `mlflow run` already logs its own `seed` parameter (empty when defaulted)."""
    nested = {key: value for key, value in resolved.items() if isinstance(value, dict)}
    top = {key: value for key, value in resolved.items() if not isinstance(value, dict)}
    return {**tracking.flatten(nested), **tracking.flatten(top, "run.")}


def metric_records(result: evaluate.Evaluation) -> list[tuple[str, float, int]]:
    """cv_<m>_mean/std, cv_<m>_fold_<k> (and cv_<m> at step k for charts), test_<m>."""
    records: list[tuple[str, float, int]] = []
    for name in result.test:
        records.append((f"cv_{name}_mean", result.cv_mean(name), 0))
        records.append((f"cv_{name}_std", result.cv_std(name), 0))
        for k, fold in enumerate(result.folds, start=1):
            records.append((f"cv_{name}_fold_{k}", fold[name], 0))
            records.append((f"cv_{name}", fold[name], k))
        records.append((f"test_{name}", result.test[name], 0))
    return records


def artifact_location(config: Config) -> str | None:
    """Where experiments the kit creates keep their artifacts: an S3 prefix for storage=s3,
    MLflow's default (./mlruns, or the tracking server's) otherwise."""
    if config.storage.kind != "s3":
        return None
    prefix = config.storage.prefix.strip("/")
    parts = [config.storage.bucket, *([prefix] if prefix else []), config.tracking.experiment_name]
    return "s3://" + "/".join(parts)


def check_storage(config: Config) -> None:
    """Everything about the stores that can be known before any work: endpoint, bucket,
    credentials, and the output destination."""
    s3.use_endpoint(config.storage.endpoint)
    if config.storage.kind == "s3":
        s3.check_bucket(f"s3://{config.storage.bucket}")
    outputs.check_destination(config.data.output)


def run(config: Config) -> RunSummary:
    """Train, evaluate, report and record one run; returns what the console prints."""
    validate(config)
    check_storage(config)
    dataset = data.load(config.data.input, config.data.target)
    evaluate.check_feasible(dataset, config.evaluation)
    estimator = model.build(config.model, config.seed)
    git = provenance.git_state(provenance.PROJECT_DIR)
    tags = provenance.tags(provenance.PROJECT_DIR, git, config.tracking.note)
    tracking_uri = tracking.absolute_tracking_uri(tracking.use_tracking_uri(config.tracking))
    name = run_name(config)
    location = artifact_location(config)

    with (
        Background(report.warm_up) as background,
        tracking.active_run(config.tracking, name, tags, location) as active,
    ):
        run_id = active.info.run_id
        _opened.append(run_id)
        run_root = tracking.artifact_uri(run_id)
        tracking.check_artifact_location(run_root, location, f"run {run_id}")
        to_s3 = run_root.startswith("s3://") or outputs.is_s3(config.data.output)
        with ArtifactWriter(
            run_id, tracking.redact(tracking_uri), config.storage, warm_s3=to_s3
        ) as writer:
            tracking.log_tags(run_id, {tracking.ARTIFACTS_TAG: "pending"})
            summary = _record(
                config, dataset, estimator, git, tags, name, run_id, run_root, background, writer
            )
            stored = writer.flush()
            if stored.complete:
                for model_id in writer.journal.models:
                    tracking.finalize_model(model_id)
            tracking.mark_artifacts(run_id, stored.pending)
            if stored.complete and config.registry.register:
                registered = config.registry.model_name
                for model_id in writer.journal.models:
                    version = tracking.register_model(model_id, registered)
                    label = f"{registered}/{version}"
                    tracking.log_tags(run_id, {"kit.registered_model": label})
                    print(f"Registered model {registered} version {version} (models:/{label})")
            if not stored.complete:
                reason = stored.errors[0] if stored.errors else "upload time limit reached"
                raise ArtifactsPending(
                    f"{tracking.PENDING_ERROR}: {len(stored.pending)} of "
                    f"{stored.uploaded + len(stored.pending)} files are kept in "
                    f"{writer.folder} ({reason}); run `python -m logistic_regression sync` "
                    "when the store is back"
                )
    return summary


class ArtifactsPending(KitError):
    """Uploads did not all finish; the files wait in the spool for `sync`."""


def _record(config, dataset, estimator, git, tags, name, run_id, run_root, background, writer):
    """The body of a run: everything logged, nothing waiting for the network."""
    installed = background.submit(provenance.installed_packages)
    resolved = public_config(config)
    params = config_params(resolved)
    tracking.log_params(run_id, params)
    tracking.log_dataset(
        dataset.frame,
        dataset.ref.uri,
        Path(dataset.ref.uri).name,
        config.data.target,
        dataset.ref.digest,
    )
    result = evaluate.evaluate(dataset, estimator, config.evaluation, config.seed)
    model_id, model_root = tracking.create_model(run_id, params)
    model_folder = writer.scratch("model")
    saved = background.submit(
        tracking.save_model,
        result.model,
        result.split.X_train.head(5),
        str(model_folder),
        run_id,
        model_id,
        model_root,
    )
    records = metric_records(result)
    tracking.log_metrics(run_id, records)
    baseline = tracking.compare_with_baseline(run_id, {k: v for k, v, step in records if not step})
    predictions = evaluate.predictions_table(result)
    output_path = outputs.write_predictions(predictions, config.data.output, run_id, writer)
    data_params = {
        "input_path": dataset.ref.uri,
        "input_digest": dataset.ref.digest,
        "output_path": output_path,
    }
    if dataset.ref.etag:
        data_params["input_etag"] = dataset.ref.etag
    if dataset.ref.version:
        data_params["input_version"] = dataset.ref.version
    tracking.log_params(run_id, data_params)
    if result.warnings:
        tracking.log_tags(run_id, {tracking.WARNINGS_TAG: " | ".join(result.warnings)})
        for warning in result.warnings:
            log.warning(warning)

    packages = installed()
    report_input = report.ReportInput(
        run_id=run_id,
        run_name=name,
        note=config.tracking.note,
        params=params,
        folds=result.folds,
        test=result.test,
        confusion=result.confusion,
        labels=[str(label) for label in sorted(dataset.target.unique())],
        roc_curve=result.roc_curve,
        pr_curve=result.pr_curve,
        coefficients=model.coefficients(result.model, list(dataset.features.columns)),
        provenance={**tags, **data_params, "python": provenance.python_version()},
        packages={k: v for k, v in packages.items() if k in KEY_PACKAGES},
        warnings=result.warnings,
        baseline=baseline,
    )
    images = background.submit(report.plots, report_input)

    staging = writer.scratch("artifacts")  # written in the spool: adopted without a copy
    staging.mkdir()
    (staging / "predictions.csv").write_text(predictions.to_csv(index=False))
    (staging / "features.txt").write_text("\n".join(dataset.features.columns) + "\n")
    (staging / "config.yaml").write_text(OmegaConf.to_yaml(resolved))
    (staging / "environment.txt").write_text(provenance.environment_lock(packages))
    if git is not None and git.dirty:
        (staging / "uncommitted.patch").write_text(git.patch)
    html = report.render(report_input, images())
    (staging / "report.html").write_text(html, encoding="utf-8")
    writer.adopt_folder(staging, run_root)
    saved()
    writer.adopt_folder(model_folder, model_root, model_id=model_id)
    writer.finalize_model_when_stored(model_id)

    headline = config.evaluation.headline_metric
    return RunSummary(
        run_id=run_id,
        run_name=name,
        headline=headline,
        cv_mean=result.cv_mean(headline),
        cv_std=result.cv_std(headline),
        test_value=result.test[headline],
        report_uri=run_root + "/report.html",
        output_path=output_path,
    )


KEY_PACKAGES = ("mlflow", "scikit-learn", "numpy", "pandas", "scipy", "hydra-core", "boto3")


def print_summary(summary: RunSummary, tracking_uri: str) -> None:
    print(f"Run {summary.run_id} ({summary.run_name}) finished")
    print(f"  CV {summary.headline}: {summary.cv_mean:.4f} ± {summary.cv_std:.4f}")
    print(f"  test {summary.headline}: {summary.test_value:.4f}")
    print(f"  report: {summary.report_uri}")
    print(f"  predictions: {summary.output_path}")
    if tracking_uri.startswith(("http://", "https://")):
        print(f"  UI: {tracking_uri}")
    else:
        print(f"  UI: mlflow ui --backend-store-uri {tracking_uri}")


def fail_pending_mlflow_run(reason: str) -> None:
    """`mlflow run` created a run before starting us; never leave it RUNNING."""
    run_id = tracking.run_id_from_mlflow_run()
    if not run_id:
        return
    from mlflow.tracking import MlflowClient

    if MlflowClient().get_run(run_id).info.status == "RUNNING":
        tracking.fail_run(run_id, reason)


def refuse(exc: KitError) -> int:
    """A user error: one line on stderr, the pending `mlflow run` run failed, exit code 2."""
    print(f"error: {exc}", file=sys.stderr)
    fail_pending_mlflow_run(str(exc))
    return 2


def notify_end(config: Config, status: str, error: str = "", run_id: str = "") -> None:
    """POST the run's summary to the webhook, if one is set (a failure is a warning).
    `run_id`: which run ended (default: the last run this process opened)."""
    run_id = run_id or (_opened[-1] if _opened else "")
    if not config.notify.webhook_url or not run_id:
        return
    from logistic_regression import notify

    info, metrics = tracking.run_summary(run_id)
    tracking_uri = tracking.redact(os.environ.get("MLFLOW_TRACKING_URI") or config.tracking.uri)
    body = notify.payload(
        run_id,
        info.run_name,
        status,
        metrics,
        notify.run_link(tracking_uri, info.experiment_id, run_id),
        error,
    )
    notify.send(config.notify.webhook_url, body, config.notify.timeout_s)


def execute(config: Config) -> int:
    """Run and print; user errors become one line on stderr and exit code 2."""
    _opened.clear()
    try:
        summary = run(config)
    except KitError as exc:
        notify_end(config, "FAILED", str(exc))
        return refuse(exc)
    except Exception as exc:
        notify_end(config, "FAILED", f"{type(exc).__name__}: {first_line(exc)}")
        raise
    print_summary(summary, os.environ.get("MLFLOW_TRACKING_URI") or config.tracking.uri)
    notify_end(config, "FINISHED")
    return 0


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> int | float:
    """Hydra's full command line (--help, --cfg job, -m multirun) lands here."""
    config = OmegaConf.to_object(cfg)
    if os.environ.get(tracking.PARENT_VARIABLE):
        return run_child(config)
    return execute(config)


# Run ids this process opened: tells a sweep whether a failed configuration got a run.
_opened: list[str] = []


def run_child(config: Config) -> float:
    """One configuration of a sweep. Never raises: a failure is a FAILED child run with
    its reason, and the sweep goes on. Returns the sweep metric (for Optuna), NaN if none."""
    _opened.clear()
    report.warm_up()  # once per process (a no-op after the first configuration), so the
    tracking.warm_up_model_format()  # workers forked for each run inherit the imports
    try:
        summary = run(config)
    except Exception as exc:
        reason = (
            str(exc) if isinstance(exc, KitError) else f"{type(exc).__name__}: {first_line(exc)}"
        )
        print(f"error: {reason}", file=sys.stderr)
        if not _opened:
            resolved = public_config(config)
            tracking.record_failed_child(
                os.environ[tracking.PARENT_VARIABLE],
                run_name(config),
                reason,
                config_params(resolved),
            )
        return float("nan")
    print_summary(summary, os.environ.get("MLFLOW_TRACKING_URI") or config.tracking.uri)
    value = tracking.metric_value(summary.run_id, config.sweep.metric)
    return float("nan") if value is None else value


def sweep_parent(config: Config) -> str:
    """The parent run of a sweep: the run `mlflow run -e sweep` made, else a new one.

    It also imports, once, what each configuration's forked workers would otherwise
    import again every time (skops for the model, matplotlib for the charts)."""
    report.warm_up()
    tracking.warm_up_model_format()
    tracking.use_tracking_uri(config.tracking)
    existing = tracking.run_id_from_mlflow_run()
    if existing:
        return existing
    git = provenance.git_state(provenance.PROJECT_DIR)
    tags = provenance.tags(provenance.PROJECT_DIR, git, config.tracking.note)
    experiment = tracking.experiment_id(config.tracking.experiment_name, artifact_location(config))
    return tracking.start_parent(experiment, f"sweep-{time.strftime('%Y%m%d-%H%M%S')}", tags)


def finish_sweep(config: Config, parent_id: str, aborted: str = "") -> bool:
    """Best child, counts and the HTML summary on the parent, then its honest end.
    Returns True when at least one configuration finished."""
    from logistic_regression import sweep

    metric, direction = config.sweep.metric, config.sweep.direction
    children = [
        sweep.Child(
            run_id=child.info.run_id,
            name=child.info.run_name,
            status=child.info.status,
            params={k: v for k, v in child.data.params.items() if "." in k},
            value=child.data.metrics.get(metric),
            error=child.data.tags.get(tracking.ERROR_TAG, ""),
        )
        for child in tracking.child_runs(parent_id)
    ]
    html, best, swept = sweep.render_summary(parent_id, children, metric, direction)
    failed = sum(child.status != "FINISHED" for child in children)
    tags = {
        sweep.SWEEP_TAG: "aborted" if aborted else "finished",
        "sweep.children": str(len(children)),
        "sweep.failed": str(failed),
        "sweep.metric": metric,
        "sweep.direction": direction,
        "sweep.parameters": ", ".join(swept),
    }
    if best is not None:
        tags["sweep.best_run_id"] = best.run_id
        tags.update({f"sweep.best.{name}": best.params.get(name, "") for name in swept})
        tracking.log_metrics(parent_id, [(f"best_{metric}", best.value, 0)])
    root = tracking.artifact_uri(parent_id)
    tracking_uri = tracking.absolute_tracking_uri(tracking.use_tracking_uri(config.tracking))
    with ArtifactWriter(parent_id, tracking.redact(tracking_uri), config.storage) as writer:
        folder = writer.scratch("summary")
        folder.mkdir()
        sweep.summary_path(folder).write_text(html, encoding="utf-8")
        writer.adopt_folder(folder, root)
        stored = writer.flush()
    tracking.mark_artifacts(parent_id, stored.pending)
    if aborted:
        tags[tracking.ERROR_TAG] = aborted
    elif best is None:
        tags[tracking.ERROR_TAG] = f"all {len(children)} configurations failed"
    status = "FINISHED" if best is not None and not aborted else "FAILED"
    tracking.end_run(parent_id, status, tags)
    notify_end(config, status, tags.get(tracking.ERROR_TAG, ""), run_id=parent_id)
    print(
        f"Sweep {parent_id}: {len(children)} configurations, {failed} failed"
        + (f"; best {metric} = {best.value:.4f} in run {best.run_id}" if best else "")
    )
    return best is not None


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if any(arg.startswith("-") for arg in args):
            sys.argv = [sys.argv[0], *args]
            _sweep_outcome.clear()
            try:
                hydra_main()
            except SystemExit as stop:  # Hydra reports its own errors, then exits
                _end_interrupted_sweep(f"the sweep stopped: exit code {stop.code}")
                raise
            return _sweep_exit_code()
        return execute(compose_config(args))
    except KitError as exc:
        return refuse(exc)
    except Exception as exc:
        if os.environ.get(DEBUG_VARIABLE):
            raise
        line = first_line(exc)
        print(
            f"error: unexpected {type(exc).__name__}: {line} "
            f"(set {DEBUG_VARIABLE}=1 for the traceback)",
            file=sys.stderr,
        )
        fail_pending_mlflow_run(f"{type(exc).__name__}: {line}")
        return 1


_sweep_outcome: list[bool] = []


def _end_interrupted_sweep(reason: str) -> None:
    """A multirun that Hydra aborted (a bad override value) still ends its parent."""
    parent = os.environ.pop(tracking.PARENT_VARIABLE, "")
    if parent:
        config = compose_config([])
        finish_sweep(config, parent, aborted=reason)


def _sweep_exit_code() -> int:
    """After a multirun: 1 when no configuration finished, else 0."""
    return 1 if _sweep_outcome and not any(_sweep_outcome) else 0


if __name__ == "__main__":
    sys.exit(main())
