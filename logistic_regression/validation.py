"""What the config's types cannot say, checked before any work: one `ConfigError` line
naming the value and what is allowed (the refusal table in tests/test_refusals.py)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from logistic_regression.config import (
    ALL_METRIC_NAMES,
    SEED_MAX,
    SOLVER_PENALTIES,
    SWEEP_METRICS,
    TASK_METRICS,
    CategoricalImpute,
    ClassWeight,
    Config,
    Direction,
    HandleUnknown,
    NumericImpute,
    Penalty,
    PreprocessingConfig,
    Solver,
    StorageConfig,
    StorageKind,
    sweep_metrics,
)
from logistic_regression.errors import ConfigError
from logistic_regression.formats import check_options, read_options


def _allowed(name: str, value: Any, allowed: Iterable[str]) -> None:
    choices = [str(choice) for choice in allowed]
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not allowed; choose one of: {', '.join(choices)}")


# The longest note (`mlflow.note.content`, a tag) every MLflow store takes: its SQL
# stores' tag values are VARCHAR(8000); SQLite alone would keep more.
NOTE_LIMIT = 8000


def validate(cfg: Config) -> None:
    """Check what the types cannot; raise ConfigError naming the value and what is allowed."""
    m, e = cfg.model, cfg.evaluation
    if not 0 <= cfg.seed <= SEED_MAX:
        raise ConfigError(
            f"seed={cfg.seed} is not allowed; it must be a whole number from 0 to {SEED_MAX}"
        )
    if not m.C > 0:
        raise ConfigError(f"model.C={m.C} is not allowed; C must be a number > 0")
    if m.C == math.inf:  # 1e400 reads as inf: no regularisation at all, by accident
        raise ConfigError(f"model.C={m.C} is not allowed; C must be a finite number")
    _allowed("model.penalty", m.penalty, Penalty)
    _allowed("model.solver", m.solver, Solver)
    if m.penalty not in SOLVER_PENALTIES[Solver(m.solver)]:
        able = [s for s, p in SOLVER_PENALTIES.items() if m.penalty in p]
        raise ConfigError(
            f"model.solver={m.solver!r} cannot fit model.penalty={m.penalty!r}; "
            f"{m.solver} supports {', '.join(SOLVER_PENALTIES[Solver(m.solver)])}, "
            f"and {m.penalty} needs one of: {', '.join(able)}"
        )
    if not 0.0 <= m.l1_ratio <= 1.0:
        raise ConfigError(f"model.l1_ratio={m.l1_ratio} is not allowed; it must be in [0, 1]")
    if m.max_iter < 1:
        raise ConfigError(f"model.max_iter={m.max_iter} is not allowed; it must be >= 1")
    _allowed("model.class_weight", m.class_weight, ClassWeight)
    if e.cv_folds < 2:
        raise ConfigError(f"evaluation.cv_folds={e.cv_folds} is not allowed; it must be >= 2")
    if not 0.0 < e.test_size < 1.0:
        raise ConfigError(
            f"evaluation.test_size={e.test_size} is not allowed; it must be between 0 and 1"
        )
    _allowed("evaluation.headline_metric", e.headline_metric, ALL_METRIC_NAMES)
    validate_preprocessing(cfg.preprocessing)
    if not cfg.data.input:
        raise ConfigError("data.input is empty; give a built-in dataset name or a CSV/Parquet path")
    check_options(read_options(asdict(cfg.data)), cfg.data.input)
    validate_storage(cfg.storage)
    _allowed("sweep.metric", cfg.sweep.metric, SWEEP_METRICS)
    _allowed("sweep.direction", cfg.sweep.direction, Direction)
    if not cfg.notify.timeout_s > 0:
        raise ConfigError(
            f"notify.timeout_s={cfg.notify.timeout_s} is not allowed; it must be > 0 seconds"
        )
    if cfg.registry.register and not cfg.registry.model_name.strip():
        raise ConfigError("registry.model_name is empty; registry.register=true needs a name")
    url = cfg.notify.webhook_url
    if url and not url.startswith(("http://", "https://")):
        raise ConfigError(
            "notify.webhook_url is not allowed: it must start with http:// or https:// "
            "(the value is a secret and is not shown)"
        )
    if not 0 < cfg.tracking.timeout_s < math.inf:
        raise ConfigError(
            f"tracking.timeout_s={cfg.tracking.timeout_s} is not allowed; "
            "it must be a number of seconds > 0"
        )
    if not cfg.tracking.experiment_name:
        raise ConfigError("tracking.experiment_name is empty; give the experiment a name")
    if len(cfg.tracking.note) > NOTE_LIMIT:
        raise ConfigError(
            f"tracking.note has {len(cfg.tracking.note)} characters; a note holds at most "
            f"{NOTE_LIMIT} (what every MLflow store keeps in a tag: PostgreSQL refuses more)"
        )


def validate_preprocessing(p: PreprocessingConfig) -> None:
    _allowed("preprocessing.numeric_impute", p.numeric_impute, NumericImpute)
    _allowed("preprocessing.categorical_impute", p.categorical_impute, CategoricalImpute)
    _allowed("preprocessing.handle_unknown", p.handle_unknown, HandleUnknown)
    if p.min_frequency < 1:
        raise ConfigError(
            f"preprocessing.min_frequency={p.min_frequency} is not allowed; it must be >= 1 "
            "(1: no category is grouped as infrequent)"
        )
    if p.max_categories < 0 or p.max_categories == 1:
        raise ConfigError(
            f"preprocessing.max_categories={p.max_categories} is not allowed; it must be 0 "
            "(no cap) or >= 2"
        )
    both = sorted(set(p.numeric_columns) & set(p.categorical_columns))
    if both:
        raise ConfigError(
            "preprocessing.numeric_columns and preprocessing.categorical_columns both list: "
            + ", ".join(both)
        )


def validate_for_task(cfg: Config, task: str, classes: list[str]) -> None:
    """What depends on the target, checked once the data is loaded (still before the run):
    the headline and sweep metrics the task records, the solver, the positive label."""
    names = TASK_METRICS[task]
    _allowed(f"evaluation.headline_metric ({task} target)", cfg.evaluation.headline_metric, names)
    _allowed(f"sweep.metric ({task} target)", cfg.sweep.metric, sweep_metrics(names))
    if task == "multiclass" and cfg.model.solver == Solver.LIBLINEAR:
        raise ConfigError(
            "model.solver='liblinear' cannot fit a multinomial model for a multiclass target "
            f"({len(classes)} classes); use lbfgs, newton-cg, newton-cholesky, sag or saga"
        )
    if task == "multiclass" and cfg.data.positive_label:
        raise ConfigError(
            f"data.positive_label={cfg.data.positive_label!r} is for a binary target; "
            f"{cfg.data.target!r} has {len(classes)} classes; leave it empty"
        )


def validate_storage(s: StorageConfig) -> None:
    _allowed("storage.kind", s.kind, StorageKind)
    if s.kind == "s3" and not s.bucket:
        raise ConfigError("storage.bucket is empty; storage=s3 needs the bucket for artifacts")
    if "/" in s.bucket or s.bucket.startswith("s3:"):
        raise ConfigError(
            f"storage.bucket={s.bucket!r} is not allowed; give the bare bucket name "
            "(the key prefix goes in storage.prefix)"
        )
    for name in ("upload_workers", "multipart_threshold_mb", "multipart_chunksize_mb"):
        if getattr(s, name) < 1:
            raise ConfigError(f"storage.{name}={getattr(s, name)} is not allowed; it must be >= 1")
    if s.multipart_chunksize_mb < 5:
        raise ConfigError(
            f"storage.multipart_chunksize_mb={s.multipart_chunksize_mb} is not allowed; "
            "S3 parts must be >= 5 MB"
        )
    if s.retry.max_attempts < 1:
        raise ConfigError(
            f"storage.retry.max_attempts={s.retry.max_attempts} is not allowed; it must be >= 1"
        )
    if s.retry.backoff_s < 0 or s.retry.max_backoff_s < 0:
        raise ConfigError("storage.retry backoff times must be >= 0 seconds")
    if not s.flush_timeout_s > 0:
        raise ConfigError(
            f"storage.flush_timeout_s={s.flush_timeout_s} is not allowed; it must be > 0 seconds"
        )
