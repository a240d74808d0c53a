"""Render one self-contained HTML report: no external scripts, styles, fonts or images.

It leads with what a reader asks first (how good, on what data, from which code, in what
state), then provenance, metrics and charts, and ends with the parameters, the
infrastructure ones folded away. Plots are PNGs inlined as data URIs (report_charts);
every piece of user text goes through Jinja2's autoescaping, so a note or column name
cannot inject markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime

import jinja2
import numpy as np

from logistic_regression.provenance import GIT_COMMIT, GIT_DIRTY
from logistic_regression.report_charts import (
    Charts,
    average_precision,
    css_size,
    plots,
    png_data_uri,
    prevalence,
    warm_up,
)

__all__ = ["Charts", "ReportInput", "TEMPLATES", "plots", "png_data_uri", "render", "warm_up"]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(kw_only=True)
class ReportInput(Charts):
    """Everything the report shows: the charts' input and what the whole run adds."""

    run_id: str
    run_name: str
    note: str
    params: dict[str, str]
    folds: list[dict[str, float]]
    provenance: dict[str, str]
    packages: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    baseline: dict | None = None  # {"run_id", "run_name", "rows": [{metric, value, ...}]}
    preprocessing: dict | None = None  # model.preprocessing_summary
    headline: str = "roc_auc"  # evaluation.headline_metric
    experiment: str = ""
    train_rows: int | None = None
    class_counts: dict[str, int] = field(default_factory=dict)  # every labelled row
    # The report is written before the run ends: its state then, never a guessed outcome.
    status: str = (
        "trained and evaluated; its files were stored after this was written (the run's "
        "kit.artifacts tag in the MLflow UI says whether all were)"
    )
    written: str = field(default_factory=_now)

    @classmethod
    def of(cls, charts: Charts, **rest) -> ReportInput:
        """The report of a run whose charts are `charts` (drawn before the rest was known)."""
        return cls(**{f.name: getattr(charts, f.name) for f in fields(Charts)}, **rest)


TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("logistic_regression", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters["section"] = lambda key: key.split(".", 1)[0]  # `storage.kind` -> storage

# Parameter groups by the config section a key starts with; the rest (where and how the
# run was recorded) is folded away.
PARAMETER_GROUPS = {
    "model": ("model.",),
    "data": ("data.", "preprocessing."),
    "evaluation": ("evaluation.", "seed"),
}


def parameter_groups(params: dict[str, str]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """(the model, data and evaluation parameters by group, the infrastructure rest),
    without what does not apply to this run: an empty setting, or `model.l1_ratio`
    unless the penalty is elasticnet (config.yaml still holds every value)."""
    groups: dict[str, dict[str, str]] = {name: {} for name in PARAMETER_GROUPS}
    rest: dict[str, str] = {}
    for key, value in sorted(params.items()):
        if value == "" or (key == "model.l1_ratio" and params.get("model.penalty") != "elasticnet"):
            continue
        group = next(
            (g for g, prefixes in PARAMETER_GROUPS.items() if key.startswith(prefixes)), None
        )
        (groups[group] if group else rest)[key] = value
    return groups, rest


def confusion_cells(report: ReportInput) -> list[list[dict]]:
    """Each cell's count, its share of the actual class's rows, and a shade by that share
    (the diagonal dark where the model is right; an empty cell unshaded)."""
    rows = []
    for row in report.confusion:
        total = sum(row)
        rows.append(
            [
                {
                    "count": cell,
                    "share": cell / total if total else 0.0,
                    "alpha": round(
                        (0.08 if cell else 0.0) + 0.72 * (cell / total if total else 0.0), 2
                    ),
                }
                for cell in row
            ]
        )
    return rows


def facts(report: ReportInput, summary: dict[str, tuple[float, float]]) -> dict:
    """The summary at the top: the headline metric, rows, balance, code version."""
    headline = report.headline if report.headline in report.test else next(iter(report.test))
    commit = report.provenance.get(GIT_COMMIT, "")
    test_rows = sum(map(sum, report.confusion))
    total = sum(report.class_counts.values())
    return {
        "headline": headline,
        "cv": summary[headline],
        "test": report.test[headline],
        "train_rows": report.train_rows,
        "test_rows": test_rows,
        "balance": [(label, n, n / total) for label, n in report.class_counts.items()]
        if total
        else [],
        "commit": commit[:7],
        "dirty": report.provenance.get(GIT_DIRTY) == "true",
    }


def negative_label(report: ReportInput) -> str | None:
    """A binary target's other class (None for a multiclass one)."""
    if report.positive_label is None or len(report.labels) != 2:
        return None
    return next(label for label in report.labels if label != report.positive_label)


def render(report: ReportInput, images: dict[str, str] | None = None) -> str:
    """The report as one HTML string; `images` come from `plots` (drawn here if not given)."""
    folds = report.folds
    metrics = list(report.test)  # the task's metric names (config.TASK_METRICS), in order
    summary = {
        name: (float(np.mean([f[name] for f in folds])), float(np.std([f[name] for f in folds])))
        for name in metrics
    }
    images = plots(report) if images is None else images
    groups, infrastructure = parameter_groups(report.params)
    return TEMPLATES.get_template("report.html.j2").render(
        r=report,
        metrics=metrics,
        summary=summary,
        facts=facts(report, summary),
        images=images,
        sizes={name: css_size(uri) for name, uri in images.items()},
        confusion=confusion_cells(report),
        average_precision=None if report.pr_curve is None else average_precision(report.pr_curve),
        prevalence=prevalence(report),
        negative_label=negative_label(report),
        groups=groups,
        infrastructure=infrastructure,
    )
