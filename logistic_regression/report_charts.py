"""The report's charts, drawn with matplotlib into PNG data URIs.

PNGs at twice the CSS size (DPI) stay sharp on high-density screens and keep the report
one self-contained file; text stays inside the picture, so no user label reaches the
page's markup through a chart (the page shows the same labels autoescaped in alt text).
"""

from __future__ import annotations

import base64
import io
import struct
from dataclasses import dataclass, field

import numpy as np

# 2x the 96 dpi a browser lays out at: crisp on phones and HiDPI laptops.
DPI = 192
CSS_DPI = 96
POSITIVE_COLOUR, NEGATIVE_COLOUR = "#2471a3", "#c0392b"


@dataclass(kw_only=True)
class Charts:
    """What the charts (and the report's test section) show: the held-out scores and the
    fitted model. All of it is known before the folds are fitted, so the charts are drawn
    in the background meanwhile; the report's `Charts` is this and the rest."""

    test: dict[str, float]
    confusion: list[list[int]]
    labels: list[str]  # the target's classes, as the user wrote them (confusion order)
    roc_curve: tuple[np.ndarray, np.ndarray] | None  # binary targets only
    pr_curve: tuple[np.ndarray, np.ndarray] | None  # binary targets only
    coefficients: list[tuple[str, float]]
    intercept: list[tuple[str, float]] = field(default_factory=list)  # model.intercepts
    positive_label: str | None = None  # binary targets: the positive class
    top_coefficients: int = 15


# Fonts with Japanese, Chinese and Korean glyphs, used after matplotlib's own for labels
# and column names in those scripts, when the machine has one.
CJK_FONTS = (
    *("Noto Sans CJK JP", "Noto Sans JP", "IPAexGothic", "IPAGothic", "TakaoGothic"),
    *("Yu Gothic", "MS Gothic", "Hiragino Sans", "Source Han Sans JP"),
)


def png_data_uri(figure) -> str:
    """The figure as a PNG. Without a CJK font a Japanese label is drawn as boxes (the
    report's tables and alt text still show it): said once in docs/data.md, not as one
    warning per character on the console."""
    import warnings

    import matplotlib
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    fallback = [name for name in CJK_FONTS if name in installed]
    buffer = io.BytesIO()
    sans = [*matplotlib.rcParams["font.sans-serif"], *fallback]
    with matplotlib.rc_context({"font.sans-serif": sans}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        figure.savefig(
            buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None}
        )
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def css_size(uri: str) -> tuple[int, int]:
    """The width and height to lay a data-URI PNG out at (its pixels at CSS_DPI), read
    from its IHDR chunk: the page reserves the space before the image decodes."""
    header = base64.b64decode(uri.split(",", 1)[1][:44])
    width, height = struct.unpack(">II", header[16:24])
    return round(width * CSS_DPI / DPI), round(height * CSS_DPI / DPI)


def average_precision(pr_curve: tuple[np.ndarray, np.ndarray]) -> float:
    """Average precision from the curve sklearn's precision_recall_curve gives (recall
    falling): the step-wise area, as sklearn.metrics.average_precision_score has it."""
    recall, precision = pr_curve
    return float(-np.sum(np.diff(recall) * np.asarray(precision)[:-1]))


def prevalence(report: Charts) -> float | None:
    """The positive class's share of the test rows: the precision of guessing at random."""
    if report.positive_label is None or report.positive_label not in report.labels:
        return None
    total = sum(map(sum, report.confusion))
    row = report.confusion[report.labels.index(report.positive_label)]
    return sum(row) / total if total else None


def plots(report: Charts) -> dict[str, str]:
    """ROC and precision-recall (binary targets) and coefficient charts as inline PNG
    data URIs."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    images: dict[str, str] = {}
    if report.roc_curve is not None and report.pr_curve is not None:
        images.update(_curves(report, Figure))
    if report.coefficients:
        images["coefficients"] = _coefficients(report, Figure)
    return images


def _unit_axes(axes) -> None:
    """Both axes 0 to 1, the square a rate or a probability lives in."""
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    for line in axes.get_lines():
        line.set_clip_on(False)  # a curve along 1.0 is drawn whole


def _curves(report: Charts, Figure) -> dict[str, str]:
    assert report.roc_curve is not None and report.pr_curve is not None
    positive = report.positive_label
    images: dict[str, str] = {}
    fpr, tpr = report.roc_curve
    figure = Figure(figsize=(4.2, 3.8))
    axes = figure.add_subplot()
    axes.plot(fpr, tpr, color=POSITIVE_COLOUR, label=f"AUC {report.test['roc_auc']:.4f}")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="chance")
    axes.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC (test)")
    _unit_axes(axes)
    axes.legend(loc="lower right")
    images["roc"] = png_data_uri(figure)

    recall, precision = report.pr_curve
    figure = Figure(figsize=(4.2, 3.8))
    axes = figure.add_subplot()
    ap = average_precision(report.pr_curve)
    axes.plot(
        recall, precision, color=POSITIVE_COLOUR, drawstyle="steps-post", label=f"AP {ap:.4f}"
    )
    share = prevalence(report)
    if share is not None:
        axes.axhline(share, linestyle="--", color="grey", linewidth=0.8)
        axes.plot([], [], linestyle="--", color="grey", label=f"prevalence {share:.3f}")
    axes.set(
        xlabel=f"Recall (positive class: {positive})",
        ylabel="Precision",
        title="Precision-recall (test)",
    )
    _unit_axes(axes)
    axes.legend(loc="lower left")
    images["pr"] = png_data_uri(figure)
    return images


def _coefficients(report: Charts, Figure) -> str:
    top = report.coefficients[: report.top_coefficients][::-1]
    names = [_short(name) for name, _ in top]
    values = [value for _, value in top]
    figure = Figure(figsize=(4.6, 0.26 * len(top) + 1.3))
    axes = figure.add_subplot()
    axes.barh(
        range(len(top)),
        values,
        color=[NEGATIVE_COLOUR if value < 0 else POSITIVE_COLOUR for value in values],
    )
    axes.set_yticks(range(len(top)), names)
    axes.axvline(0, color="#1c2833", linewidth=0.8)
    axes.set_title("Largest coefficients", loc="left")
    label = direction_label(report)
    if report.intercept:  # under the axis: no title or bar to collide with, however long
        label += "\nintercept " + ", ".join(
            f"{_short(n, 14)} {v:+.3f}".strip() for n, v in report.intercept
        )
    axes.set_xlabel(label, fontsize=8.5)
    axes.grid(axis="x", alpha=0.3)
    return png_data_uri(figure)


def direction_label(report: Charts) -> str:
    """Which way a coefficient pushes: towards the positive class (binary), towards the
    class in brackets (multiclass, one coefficient per feature and class)."""
    if report.positive_label is not None and len(report.labels) == 2:
        negative = next(label for label in report.labels if label != report.positive_label)
        positive = _short(report.positive_label, 18)
        return f"← towards {_short(negative, 18)}    coefficient    towards {positive} →"
    return "coefficient: > 0 towards the [class], < 0 away from it"


def _short(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def warm_up() -> None:
    """Import matplotlib ahead of drawing (run in the background worker)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.figure  # noqa: F401
