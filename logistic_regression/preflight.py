"""Everything a run needs, checked and loaded before the run exists: what can be refused
is refused here, in one line, before any work is recorded (`prepare`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from sklearn.pipeline import Pipeline

from logistic_regression import (
    columns,
    console,
    data,
    environment,
    evaluate,
    model,
    outputs,
    provenance,
)
from logistic_regression.config import (
    PROJECT_DIR,
    Config,
    Penalty,
    StorageKind,
    experiment_artifact_location,
    public_config,
)
from logistic_regression.errors import StorageError
from logistic_regression.formats import read_options
from logistic_regression.storage import s3, spool
from logistic_regression.tracking import runs, store
from logistic_regression.uris import (
    absolute_tracking_uri,
    add_secret,
    has_userinfo,
    redact,
    redact_tree,
)
from logistic_regression.validation import validate, validate_for_task


@dataclass(frozen=True)
class Prepared:
    """Everything known before the run exists."""

    config: Config
    dataset: data.Dataset
    estimator: Pipeline
    git: provenance.GitState | None
    tags: dict[str, str]
    name: str
    tracking_uri: str
    artifact_location: str | None


def prepare(config: Config) -> Prepared:
    """Check and load everything a run needs; a problem is a KitError before any run."""
    add_secret(config.notify.webhook_url)  # hidden in every message from now on
    validate(config)
    refuse_credentials_in_uris(config)
    data.check_input(config.data.input)
    raw_uri = runs.use_tracking_uri(config.tracking)
    store.check_store_layout(raw_uri)
    console.note_new_store_here(raw_uri, PROJECT_DIR)
    tracking_uri = absolute_tracking_uri(raw_uri)
    store.check(tracking_uri, config.tracking.timeout_s)
    check_storage(config)
    console.warn_abandoned(spool.spool_root(config.storage), tracking_uri)
    prep = config.preprocessing
    dataset = data.load(
        config.data.input,
        config.data.target,
        prep.drop_columns,
        prep.numeric_columns,
        prep.categorical_columns,
        config.tracking.timeout_s,
        read_options(asdict(config.data)),
    )
    _, categorical = model.column_choice(prep, dataset.features)
    capped = columns.capped_notes(dataset.features, categorical, prep.max_categories)
    dataset = replace(dataset, warnings=(*dataset.warnings, *capped))
    classes = data.target_classes(dataset.target, config.data.target)
    validate_for_task(config, evaluate.task_of(classes), classes)
    if evaluate.task_of(classes) == "binary":
        evaluate.positive_label(classes, config.data.positive_label)
    evaluate.check_feasible(dataset, config.evaluation)
    git = provenance.git_state(PROJECT_DIR)
    return Prepared(
        config=config,
        dataset=dataset,
        estimator=model.build(config.model, config.seed, prep, dataset.features),
        git=git,
        tags=provenance.tags(PROJECT_DIR, git, config.tracking.note),
        name=run_name(config),
        tracking_uri=tracking_uri,
        artifact_location=experiment_artifact_location(config),
    )


CREDENTIALS_ELSEWHERE = (
    "the kit takes no credentials from a URI: S3 uses the AWS credential chain "
    "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE)"
)


def refuse_credentials_in_uris(config: Config) -> None:
    """A user name or password in the input or output URI is refused (shown redacted)."""
    for name, uri in (("data.input", config.data.input), ("data.output", config.data.output)):
        if has_userinfo(uri):
            raise StorageError(
                f"{name}={redact(uri)!r} carries credentials in the URI; {CREDENTIALS_ELSEWHERE}"
            )


def check_storage(config: Config) -> None:
    """Everything about the stores that can be known before any work: a spool the run
    can write (a folder, writable, with room), endpoint, bucket, credentials, and the
    output destination."""
    spool.check_spool(spool.spool_root(config.storage))
    environment.use_s3_endpoint(config.storage.endpoint)
    if has_userinfo(s3.endpoint() or ""):
        raise StorageError(
            f"the S3 endpoint {redact(s3.endpoint() or '')} carries credentials in the URL; "
            f"{CREDENTIALS_ELSEWHERE}, and the endpoint is given without them"
        )
    if config.storage.kind == StorageKind.S3:
        s3.check_bucket(f"s3://{config.storage.bucket}", config.tracking.timeout_s)
    outputs.check_destination(config.data.output, config.tracking.timeout_s)


def recorded_config(config: Config) -> dict:
    """The resolved config as it is recorded (params, config.yaml, the report): secret
    keys as `***` (`config.public`), every other value redacted (`uris.redact`)."""
    return redact_tree(public_config(config))


def run_name(config: Config) -> str:
    """`tracking.run_name`, else the table, its target and the model's settings
    (`penguins-species-C0.5-l2`): runs on two tables or targets differ at a glance."""
    if config.tracking.run_name:
        return redact(config.tracking.run_name)
    m = config.model
    if m.penalty == Penalty.NONE:
        model = "nopenalty"
    else:
        suffix = f"{m.penalty}{m.l1_ratio:g}" if m.penalty == Penalty.ELASTICNET else m.penalty
        model = f"C{m.C:g}-{suffix}"
    table = data.table_name(config.data.input)
    target = f"-{config.data.target}" if config.data.target else ""
    return redact(f"{table}{target}-{model}")
