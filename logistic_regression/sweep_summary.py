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


def charts(children: list[Child], parameters: list[str], metric: str) -> dict[str, str]:
    """The metric against each swept parameter, as inline PNG data URIs."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    images: dict[str, str] = {}
    scored = [c for c in children if c.value is not None]
    if not scored:
        return images
    for name in parameters:
        figure = Figure(figsize=(4.2, 3.0))
        axes = figure.subplots()
        values = [c.params.get(name, "") for c in scored]
        try:
            xs: list[Any] = [float(v) for v in values]
            numeric = True
        except ValueError:
            xs, numeric = values, False
        axes.scatter(xs, [c.value or 0.0 for c in scored])  # scored: every value is set
        if numeric and all(x > 0 for x in xs) and max(xs) / min(xs) >= 100:
            axes.set_xscale("log")
        axes.set_xlabel(name)
        axes.set_ylabel(metric)
        axes.grid(alpha=0.3)
        images[name] = png_data_uri(figure)
    return images


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
        metric=metric,
        direction=direction,
        best=best,
        failed=failed,
        images=images,
        sizes={name: css_size(uri) for name, uri in images.items()},
    )
    return html, best, parameters
