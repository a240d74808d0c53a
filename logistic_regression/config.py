"""Typed configuration: the schema Hydra checks `conf/` and every override against.

The YAML files in `conf/` hold the defaults; these dataclasses hold the types, so a
wrong type (`model.C=abc`) is refused while composing (`compose_config`). `validate`
then checks what types cannot express (ranges, allowed choices, solver/penalty pairs)
before any MLflow run exists. The closed choices are the enums below, written once;
fields keep the plain string spelling users type (`model.solver=newton-cg`).

Light on purpose: Hydra and OmegaConf only, so the server script can read
`conf/server.yaml` without importing scikit-learn or MLflow.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from logistic_regression.config_errors import one_line
from logistic_regression.config_keys import check_keys, refuse_deletions, unquoted_text
from logistic_regression.errors import ConfigError

PROJECT_DIR = Path(__file__).resolve().parent.parent


class Penalty(StrEnum):
    L1 = "l1"
    L2 = "l2"
    ELASTICNET = "elasticnet"
    NONE = "none"


class Solver(StrEnum):
    LBFGS = "lbfgs"
    LIBLINEAR = "liblinear"
    NEWTON_CG = "newton-cg"
    NEWTON_CHOLESKY = "newton-cholesky"
    SAG = "sag"
    SAGA = "saga"


class ClassWeight(StrEnum):
    NONE = "none"
    BALANCED = "balanced"


class StorageKind(StrEnum):
    LOCAL = "local"
    S3 = "s3"


class NumericImpute(StrEnum):
    MEAN = "mean"
    MEDIAN = "median"
    MOST_FREQUENT = "most_frequent"
    CONSTANT = "constant"


class CategoricalImpute(StrEnum):
    MOST_FREQUENT = "most_frequent"
    CONSTANT = "constant"


class HandleUnknown(StrEnum):
    IGNORE = "ignore"
    INFREQUENT_IF_EXIST = "infrequent_if_exist"


class Direction(StrEnum):
    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"


# Which penalties each scikit-learn solver can optimise (scikit-learn 1.9; a test fits
# every pair to keep this true).
SOLVER_PENALTIES: dict[Solver, tuple[Penalty, ...]] = {
    Solver.LBFGS: (Penalty.L2, Penalty.NONE),
    Solver.LIBLINEAR: (Penalty.L1, Penalty.L2),
    Solver.NEWTON_CG: (Penalty.L2, Penalty.NONE),
    Solver.NEWTON_CHOLESKY: (Penalty.L2, Penalty.NONE),
    Solver.SAG: (Penalty.L2, Penalty.NONE),
    Solver.SAGA: (Penalty.L1, Penalty.L2, Penalty.ELASTICNET, Penalty.NONE),
}
# The metrics every run records (cv_<m>_mean/std, cv_<m> per fold, test_<m>), by task:
# a binary target (two labels, one of them the positive class) ...
METRIC_NAMES = ("accuracy", "roc_auc", "log_loss", "f1", "precision", "recall")
# ... and a multiclass one (three or more labels): F1/precision/recall averaged over the
# classes (macro: each class alike; weighted: by its share of rows), and roc_auc the
# one-vs-rest ROC AUC averaged over the classes (macro).
MULTICLASS_METRIC_NAMES = (
    "accuracy",
    "roc_auc",
    "log_loss",
    "f1_macro",
    "f1_weighted",
    "precision_macro",
    "precision_weighted",
    "recall_macro",
    "recall_weighted",
)
TASK_METRICS = {"binary": METRIC_NAMES, "multiclass": MULTICLASS_METRIC_NAMES}
ALL_METRIC_NAMES = tuple(dict.fromkeys(METRIC_NAMES + MULTICLASS_METRIC_NAMES))
# The few metrics that summarise a run: notifications and baseline comparisons use them
# (those a task does not record are left out).
KEY_METRICS = ("cv_roc_auc_mean", "test_roc_auc", "test_accuracy", "test_f1", "test_log_loss")
# Of the metric names, the ones where lower is better.
LOWER_IS_BETTER = ("log_loss",)


def sweep_metrics(names: Iterable[str]) -> tuple[str, ...]:
    """What a sweep can rank its children by, for these metric names."""
    return tuple(
        f"{kind}_{m}{'_mean' if kind == 'cv' else ''}" for m in names for kind in ("cv", "test")
    )


# What a sweep can rank its children by (either task; checked against the task's own
# metrics once the data is loaded: `validate_for_task`).
SWEEP_METRICS = sweep_metrics(ALL_METRIC_NAMES)


@dataclass
class DataConfig:
    input: str = "breast_cancer"
    target: str = "target"
    output: str = "outputs"
    # The positive class of a binary target, as written in the data ("yes", "True", "1");
    # empty: the last label in sorted order (1 of 0/1, True of False/True).
    positive_label: str = ""
    # How a text (CSV) input is written (formats.ReadOptions): its encoding (UTF-8, a
    # byte-order mark accepted), column separator and decimal mark.
    encoding: str = "utf-8"
    sep: str = ","
    decimal: str = "."
    # The sheet of an .xlsx input, by name; empty: the first sheet.
    sheet: str = ""


@dataclass
class PreprocessingConfig:
    """What happens to the raw columns inside the logged pipeline (conf/preprocessing)."""

    numeric_columns: list[str] = field(default_factory=list)
    categorical_columns: list[str] = field(default_factory=list)
    drop_columns: list[str] = field(default_factory=list)
    numeric_impute: str = "mean"
    numeric_fill_value: float = 0.0
    scale: bool = True
    categorical_impute: str = "most_frequent"
    categorical_fill_value: str = "missing"
    handle_unknown: str = "infrequent_if_exist"
    min_frequency: int = 1
    max_categories: int = 50


@dataclass
class ModelConfig:
    C: float = 1.0
    penalty: str = "l2"
    solver: str = "lbfgs"
    l1_ratio: float = 0.5
    max_iter: int = 1000
    class_weight: str = "none"


@dataclass
class EvaluationConfig:
    cv_folds: int = 5
    test_size: float = 0.2
    headline_metric: str = "roc_auc"


@dataclass
class TrackingConfig:
    uri: str = "sqlite:///mlflow.db"
    experiment_name: str = "logistic-regression"
    run_name: str = ""
    note: str = ""
    timeout_s: float = 10.0


@dataclass
class RetryConfig:
    max_attempts: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 10.0


@dataclass
class StorageConfig:
    kind: str = "local"
    endpoint: str = ""
    bucket: str = ""
    prefix: str = "mlflow"
    upload_workers: int = 8
    multipart_threshold_mb: int = 64
    multipart_chunksize_mb: int = 16
    retry: RetryConfig = field(default_factory=RetryConfig)
    flush_timeout_s: float = 600.0
    spool_dir: str = ""
    progress: bool = True


@dataclass
class SweepConfig:
    metric: str = "cv_roc_auc_mean"
    direction: str = "maximize"
    # A sweep's parent run id: that sweep resumed (`sweep_resume.py`); empty: a new sweep.
    resume: str = ""


@dataclass
class NotifyConfig:
    webhook_url: str = ""
    timeout_s: float = 5.0
    ui_url: str = ""


@dataclass
class RegistryConfig:
    register: bool = False
    model_name: str = "logistic-regression"


# The seeds numpy and scikit-learn accept (random_state): 0 .. 2**32 - 1.
SEED_MAX = 2**32 - 1

# Config values that are secrets: never logged, stored or replayed (see `public`).
SECRET_KEYS = ("notify.webhook_url",)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    preprocessing: PreprocessingConfig = field(default_factory=PreprocessingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    seed: int = 42


def register() -> None:
    """Put the schema in Hydra's ConfigStore; `conf/config.yaml` lists it first."""
    ConfigStore.instance().store(name="base_config", node=Config)


register()


def flatten_tree(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"model": {"C": 0.5}}` -> `{"model.C": 0.5}`: the `group.key` names used everywhere."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(flatten_tree(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def public(resolved: dict) -> dict:
    """The resolved config with every secret replaced by `***` (when set): what may be
    logged as params, written to config.yaml or shown in the report."""
    cleaned = {
        key: dict(value) if isinstance(value, dict) else value for key, value in resolved.items()
    }
    for dotted in SECRET_KEYS:
        group, _, key = dotted.partition(".")
        if cleaned.get(group, {}).get(key):
            cleaned[group][key] = "***"
    return cleaned


def public_config(config: Config) -> dict:
    """The resolved config as plain data, secrets replaced by `***`: what is recorded."""
    resolved = OmegaConf.to_container(OmegaConf.structured(config))
    assert isinstance(resolved, dict)
    return public(resolved)


# -- composing conf/ ---------------------------------------------------------------


def experiment_artifact_location(config: Config) -> str | None:
    """Where experiments the kit creates keep their artifacts: an S3 prefix for storage=s3,
    MLflow's default (./mlruns, or the tracking server's) otherwise."""
    if config.storage.kind != StorageKind.S3:
        return None
    prefix = config.storage.prefix.strip("/")
    parts = [config.storage.bucket, *([prefix] if prefix else []), config.tracking.experiment_name]
    return "s3://" + "/".join(parts)


def conf_dir() -> Path:
    """`conf/` beside the package (a checkout), else in the working folder."""
    for candidate in (PROJECT_DIR / "conf", Path.cwd() / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise ConfigError(f"no conf/config.yaml found beside the package or in {Path.cwd()}")


def compose(config_name: str, overrides: list[str]) -> Any:
    """Compose `conf/<config_name>.yaml` with Hydra overrides into its typed object;
    every Hydra/OmegaConf error becomes one ConfigError line."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    refuse_deletions(overrides)
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            composed = hydra_compose(config_name=config_name, overrides=overrides)
        return to_object(composed)
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        raise ConfigError(unquoted_text(overrides) or one_line(exc, Config)) from exc


def compose_config(overrides: list[str]) -> Config:
    """Compose `conf/` with Hydra overrides into the typed run config."""
    return compose("config", overrides)


def typed_config(config: DictConfig) -> Config:
    """The kit's typed config from a composed one with Hydra's own section (a callback's
    or a launcher's), which is left out: its per-job values may not exist yet."""
    kit_keys = [str(key) for key in config if key != "hydra"]
    kit = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.masked_copy(config, kit_keys))
    assert isinstance(kit, DictConfig)
    return to_object(kit)


def to_object(composed: DictConfig) -> Any:
    """A composed config as its typed object, once its keys are the schema's: a key the
    schema does not have (`+model.c=0.01`, a typo of `model.C`; `+foo=1`) or a removed
    section (`~model`) is refused in one line, since either would leave the run on
    another value, silently."""
    check_keys(composed)
    typed = OmegaConf.to_object(composed)
    if isinstance(typed, Config):
        # MLflow's rule, applied once here for every command, sweep job and Ray task:
        # MLFLOW_TRACKING_URI, when set, wins over `tracking.uri` wherever that was set
        # (it is how `mlflow run` hands the kit the store its run is in). An
        # `${oc.env:...}` in conf/ would lose to a command-line or conf/local value.
        typed.tracking.uri = os.environ.get("MLFLOW_TRACKING_URI") or typed.tracking.uri
    return typed


def hydra_quote(text: str) -> str:
    """Quote free text so Hydra's override grammar keeps it verbatim (commas, colons, ${})."""
    # Hydra reads a backslash literally unless it stands before a quote, `${` or the end.
    doubled = re.sub(r"\\+(?=$|'|\$\{)", lambda run: run.group(0) * 2, text)
    return "'" + doubled.replace("'", "\\'").replace("${", "\\${") + "'"
