"""The sweep's summary page: which child won, what was swept, the metric against each
swept parameter. Pure: children in, HTML out (no MLflow).

It shares the run report's look (templates/_style.html.j2), is titled by the sweep's name
(what was swept), and links each configuration to its run and report in the MLflow UI
when the UI's address is known (a tracking server); otherwise it shows the run ids."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from logistic_regression.config import Direction
from logistic_regression.report import TEMPLATES
from logistic_regression.report_charts import css_size, png_data_uri
from logistic_regression.status import Status

FILE_NAME = "sweep_summary.html"


@dataclass(frozen=True)
class Child:
    run_id: str
    name: str
    status: str
    params: dict[str, str]
    value: float | None
    error: str
    experiment_id: str = ""
    std: float | None = None  # the metric's std over the folds, for a cv_<m>_mean metric
    test: float | None = None  # test_<m> for a cv_<m>_mean metric
    reused: bool = False  # recorded before the sweep was resumed, and not run again


def companions(metric: str) -> tuple[str | None, str | None]:
    """The std and test metric names that go with a sweep metric `cv_<m>_mean` (None
    for any other metric: nothing to pair it with)."""
    if metric.startswith("cv_") and metric.endswith("_mean"):
        name = metric.removeprefix("cv_").removesuffix("_mean")
        return f"cv_{name}_std", f"test_{name}"
    return None, None


def run_links(child: Child, ui_url: str | None) -> dict[str, str] | None:
    """The child's run page and its report in the MLflow UI, when the UI is known."""
    if not ui_url or not child.experiment_id:
        return None
    run = f"{ui_url.rstrip('/')}/#/experiments/{child.experiment_id}/runs/{child.run_id}"
    return {"run": run, "report": f"{run}/artifacts/report.html"}


def best_child(children: list[Child], direction: str) -> Child | None:
    scored = [(c.value, c) for c in children if c.status == Status.FINISHED and c.value is not None]
    if not scored:
        return None
    pick = max if direction == Direction.MAXIMIZE else min
    return pick(scored, key=lambda pair: pair[0])[1]


def swept_parameters(children: list[Child]) -> list[str]:
    """The params whose value differs between children: what the sweep varied."""
    names = sorted({name for child in children for name in child.params})
    return [
        name
        for name in names
        if len({child.params.get(name) for child in children}) > 1
        and not name.startswith(("input_", "output_"))
    ]


# The settings a reader of a sweep wants to see even when the sweep did not vary them.
FIXED_SECTIONS = ("model.", "evaluation.", "preprocessing.", "data.input", "data.target")


def fixed_parameters(children: list[Child], swept: list[str]) -> dict[str, str]:
    """The model, evaluation, preprocessing and data settings every configuration shared
    (`model.solver=liblinear` for the whole sweep), without empty ones and l1_ratio
    unless the penalty is elasticnet."""
    if not children:
        return {}
    first = children[0].params
    shared = {
        name: value
        for name, value in sorted(first.items())
        if name not in swept
        and name.startswith(FIXED_SECTIONS)
        and value != ""
        and all(c.params.get(name) == value for c in children)
    }
    if not any(c.params.get("model.penalty") == "elasticnet" for c in children):
        shared.pop("model.l1_ratio", None)
    return shared


# At most this many lines in one chart: one per combination of the other swept values.
MAX_SERIES = 8


def charts(children: list[Child], parameters: list[str], metric: str) -> dict[str, str]:
    """The metric against each swept parameter, as inline PNG data URIs: one line per
    combination of the other swept parameters (l1 and l2 apart), the folds' std as
    error bars for a cross-validated metric."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    images: dict[str, str] = {}
    scored = [c for c in children if c.value is not None]
    if not scored:
        return images
    for name in parameters:
        others = [p for p in parameters if p != name]
        groups: dict[str, list[Child]] = {}
        for child in scored:
            label = ", ".join(f"{p}={child.params.get(p, '')}" for p in others)
            groups.setdefault(label, []).append(child)
        if len(groups) > MAX_SERIES:
            groups = {"": scored}
        figure = Figure(figsize=(4.2, 3.0))
        axes = figure.subplots()
        numeric = all(_number(c.params.get(name, "")) is not None for c in scored)
        for label, members in groups.items():
            xs: list[Any] = [
                _number(c.params.get(name, "")) if numeric else c.params.get(name, "")
                for c in members
            ]
            pairs = list(zip(xs, members, strict=True))
            if numeric:
                pairs.sort(key=lambda pair: pair[0])
            axes.errorbar(
                [x for x, _ in pairs],
                [c.value or 0.0 for _, c in pairs],  # scored: every value is set
                yerr=[c.std or 0.0 for _, c in pairs],
                marker="o",
                capsize=3,
                linestyle="-" if numeric and len(pairs) > 1 else "none",
                label=label or None,
            )
        values = [_number(c.params.get(name, "")) or 0.0 for c in scored]
        if numeric and all(x > 0 for x in values) and max(values) / min(values) >= 100:
            axes.set_xscale("log")
        if len(groups) > 1:
            axes.legend(fontsize=7)
        axes.set_xlabel(name)
        axes.set_ylabel(metric)
        axes.grid(alpha=0.3)
        images[name] = png_data_uri(figure)
    return images


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def render_summary(
    parent_id: str,
    children: list[Child],
    metric: str,
    direction: str,
    title: str = "",
    ui_url: str | None = None,
) -> tuple[str, Child | None, list[str]]:
    """The page, the best child and the swept parameters. `title`: the parent run's name
    (`sweep model.C=0.1,1`); `ui_url`: the MLflow UI's address, for links."""
    parameters = swept_parameters(children)
    best = best_child(children, direction)
    _, test_name = companions(metric)
    failed = sum(c.status != Status.FINISHED for c in children)
    images = charts(children, parameters, metric)
    html = TEMPLATES.get_template("sweep.html.j2").render(
        parent_id=parent_id,
        title=title or f"Sweep {parent_id}",
        links={c.run_id: run_links(c, ui_url) for c in children},
        show_std=any(c.std is not None for c in children),
        show_test=any(c.test is not None for c in children),
        test_name=test_name,
        show_error=failed > 0 or any(c.error for c in children),
        children=sorted(
            children,
            key=lambda c: (
                c.value is None,
                -(c.value or 0) if direction == Direction.MAXIMIZE else c.value or 0,
            ),
        ),
        parameters=parameters,
        fixed=fixed_parameters(children, parameters),
        metric=metric,
        direction=direction,
        best=best,
        failed=failed,
        reused=sum(c.reused for c in children),
        images=images,
        sizes={name: css_size(uri) for name, uri in images.items()},
    )
    return html, best, parameters
