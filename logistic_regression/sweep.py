"""Sweeps: every configuration of a Hydra multirun as a child of one parent MLflow run.

    python -m logistic_regression.train -m model.C=0.01,0.1,1,10 model.penalty=l1,l2
    python -m logistic_regression.train -m hydra/launcher=joblib hydra.launcher.n_jobs=2 ...
    mlflow run . -e sweep -P sweep="model.C=0.01,0.1,1,10 model.penalty=l1,l2"

`SweepCallback` (registered in conf/config.yaml) opens the parent run before the first
job (or adopts the run `mlflow run -e sweep` made) and exports its id; each job then
records a child run tagged `mlflow.parentRunId` (train.py). When the sweep ends the
parent gets the best child (`sweep.best_run_id`, its swept values, `best_<metric>`), the
counts, and `sweep_summary.html` (a table of the children and the metric against each
swept parameter). A failing child is FAILED with its reason; the sweep goes on.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from logistic_regression.report import TEMPLATES, png_data_uri
from logistic_regression.tracking import PARENT_VARIABLE

SWEEP_TAG = "kit.sweep"


@dataclass(frozen=True)
class Child:
    run_id: str
    name: str
    status: str
    params: dict[str, str]
    value: float | None
    error: str


def best_child(children: list[Child], direction: str) -> Child | None:
    scored = [c for c in children if c.status == "FINISHED" and c.value is not None]
    if not scored:
        return None
    pick = max if direction == "maximize" else min
    return pick(scored, key=lambda c: c.value)


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
        axes.scatter(xs, [c.value for c in scored])
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
                -(c.value or 0) if direction == "maximize" else c.value or 0,
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


def typed_config(config: DictConfig):
    """The kit's typed config from a callback's config (without Hydra's own section,
    whose per-job values do not exist yet at multirun start)."""
    from logistic_regression.config import Config

    kit_keys = [key for key in config if key != "hydra"]
    kit = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.masked_copy(config, kit_keys))
    return OmegaConf.to_object(kit)


class SweepCallback(Callback):
    """Hydra callback: the parent run around a multirun."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from logistic_regression import tracking
        from logistic_regression.train import sweep_parent

        parent_id = sweep_parent(typed_config(config))
        os.environ[PARENT_VARIABLE] = parent_id
        tracking.log_tags(parent_id, {SWEEP_TAG: "running"})

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from logistic_regression.train import _sweep_outcome, finish_sweep

        parent_id = os.environ.pop(PARENT_VARIABLE, "")
        if not parent_id:
            return
        try:
            _sweep_outcome.append(finish_sweep(typed_config(config), parent_id))
        except Exception as exc:  # Hydra would only warn: the parent must not stay RUNNING
            from logistic_regression import tracking

            tracking.fail_run(parent_id, f"summarising the sweep failed: {exc}")
            _sweep_outcome.append(False)
            raise


def main(argv: list[str] | None = None) -> int:
    """`mlflow run . -e sweep -P sweep="..."`: one string of sweep overrides."""
    from logistic_regression import train

    args = list(sys.argv[1:] if argv is None else argv)
    overrides = [part for arg in args for part in shlex.split(arg)]
    return train.main(["-m", *overrides])


def summary_path(folder: Path) -> Path:
    return folder / "sweep_summary.html"


if __name__ == "__main__":
    sys.exit(main())
