"""Render one self-contained HTML report: no external scripts, styles, fonts or images.

Plots are PNGs inlined as data URIs; every piece of user text goes through Jinja2's
autoescaping, so a note or column name cannot inject markup.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

import jinja2
import numpy as np


@dataclass
class ReportInput:
    run_id: str
    run_name: str
    note: str
    params: dict[str, str]
    folds: list[dict[str, float]]
    test: dict[str, float]
    confusion: list[list[int]]
    labels: list[str]  # the target's classes, as the user wrote them (confusion order)
    roc_curve: tuple[np.ndarray, np.ndarray] | None  # binary targets only
    pr_curve: tuple[np.ndarray, np.ndarray] | None  # binary targets only
    coefficients: list[tuple[str, float]]
    provenance: dict[str, str]
    packages: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    top_coefficients: int = 15
    baseline: dict | None = None  # {"run_id", "run_name", "rows": [{metric, value, ...}]}
    preprocessing: dict | None = None  # model.preprocessing_summary
    positive_label: str | None = None  # binary targets: the positive class


TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("logistic_regression", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def png_data_uri(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def plots(report: ReportInput) -> dict[str, str]:
    """ROC and precision-recall (binary targets) and coefficient charts as inline PNG
    data URIs."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    images: dict[str, str] = {}
    if report.roc_curve is not None and report.pr_curve is not None:
        images.update(_curves(report, Figure))
    images["coefficients"] = _coefficients(report, Figure)
    return images


def _curves(report: ReportInput, Figure) -> dict[str, str]:
    assert report.roc_curve is not None and report.pr_curve is not None
    images: dict[str, str] = {}
    fpr, tpr = report.roc_curve
    figure = Figure(figsize=(4.2, 3.6))
    axes = figure.add_subplot()
    axes.plot(fpr, tpr, label=f"AUC {report.test['roc_auc']:.4f}")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    axes.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC (test)")
    axes.legend(loc="lower right")
    images["roc"] = png_data_uri(figure)

    recall, precision = report.pr_curve
    figure = Figure(figsize=(4.2, 3.6))
    axes = figure.add_subplot()
    axes.plot(recall, precision)
    axes.set(xlabel="Recall", ylabel="Precision", title="Precision-recall (test)")
    images["pr"] = png_data_uri(figure)
    return images


def _coefficients(report: ReportInput, Figure) -> str:
    top = report.coefficients[: report.top_coefficients][::-1]
    figure = Figure(figsize=(5.5, 0.28 * len(top) + 1.0))
    axes = figure.add_subplot()
    axes.barh(
        [name for name, _ in top],
        [value for _, value in top],
        color=["#c0392b" if value < 0 else "#2471a3" for _, value in top],
    )
    axes.set(xlabel="Coefficient (encoded features)", title="Largest coefficients")
    return png_data_uri(figure)


def warm_up() -> None:
    """Import matplotlib ahead of drawing (run in the background worker)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.figure  # noqa: F401


def render(report: ReportInput, images: dict[str, str] | None = None) -> str:
    """The report as one HTML string; `images` come from `plots` (drawn here if not given)."""
    folds = report.folds
    metrics = list(report.test)  # the task's metric names (config.TASK_METRICS), in order
    summary = {
        name: (float(np.mean([f[name] for f in folds])), float(np.std([f[name] for f in folds])))
        for name in metrics
    }
    return TEMPLATES.get_template("report.html.j2").render(
        r=report,
        metrics=metrics,
        summary=summary,
        images=plots(report) if images is None else images,
    )
