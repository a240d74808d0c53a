"""The sweep's summary page: which child won, what was swept, the metric against each
swept parameter. Pure: children in, HTML out (no MLflow)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from logistic_regression.config import Direction
from logistic_regression.report import TEMPLATES, png_data_uri

FILE_NAME = "sweep_summary.html"


@dataclass(frozen=True)
class Child:
    run_id: str
    name: str
    status: str
    params: dict[str, str]
    value: float | None
    error: str


def best_child(children: list[Child], direction: str) -> Child | None:
    scored = [(c.value, c) for c in children if c.status == "FINISHED" and c.value is not None]
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
    parent_id: str, children: list[Child], metric: str, direction: str
) -> tuple[str, Child | None, list[str]]:
    parameters = swept_parameters(children)
    best = best_child(children, direction)
    html = TEMPLATES.get_template("sweep.html.j2").render(
        parent_id=parent_id,
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
        failed=sum(c.status != "FINISHED" for c in children),
        images=charts(children, parameters, metric),
    )
    return html, best, parameters
