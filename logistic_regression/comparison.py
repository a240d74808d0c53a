"""`compare RUN_A RUN_B`: what differs between two recorded runs, section by section.

run_facts.py reads each run's facts; `compare` turns two into a `Comparison` of plain
values (comparison_page.py shows it as text or HTML). The files two commits differ in
are read with git (`provenance.changed_files`: this checkout's repository, else a bare
clone of a recorded one; nothing of its code runs), only when both commits are there.
Folds are paired only when they hold the same rows (same data, target, seed, number
of folds and test size): the paired differences are an indication, since the folds
share training rows.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient

from logistic_regression import provenance
from logistic_regression.config import LOWER_IS_BETTER, PROJECT_DIR
from logistic_regression.run_facts import RunFacts, read_run
from logistic_regression.tracking import baselines

SECTIONS = ("parameters", "code", "data", "environment", "metrics")
# What makes two runs' folds the same rows: only then are they paired fold by fold.
SPLIT_KEYS = ("digest", "data.target", "seed", "evaluation.cv_folds", "evaluation.test_size")


# -- the comparison: plain values ----------------------------------------------------


@dataclass(frozen=True)
class Row:
    name: str
    a: str | None  # None: not recorded
    b: str | None

    @property
    def same(self) -> bool:
        return self.a == self.b


@dataclass(frozen=True)
class Section:
    title: str
    rows: tuple[Row, ...]

    @property
    def differs(self) -> bool:
        return any(not row.same for row in self.rows)

    @property
    def recorded(self) -> bool:
        """Whether either run recorded anything of this section."""
        return any(row.a is not None or row.b is not None for row in self.rows)


@dataclass(frozen=True)
class MetricRow:
    name: str
    a: float | None
    b: float | None
    context: bool = False  # compares the run with another run (vs_baseline_*)

    @property
    def same(self) -> bool:
        return self.a == self.b or (
            self.a is not None and self.b is not None and math.isnan(self.a) and math.isnan(self.b)
        )

    @property
    def diff(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a


@dataclass(frozen=True)
class Folds:
    """B - A fold by fold for one cross-validated metric: an indication, not a test."""

    metric: str
    count: int
    mean: float
    std: float  # of the differences, over the folds (as the kit's cv_<m>_std)
    ahead: int  # folds where B is better (higher, or lower for a loss)
    behind: int


@dataclass(frozen=True)
class Comparison:
    a: RunFacts
    b: RunFacts
    sections: tuple[Section, ...]  # parameters, code, data, environment
    files: provenance.ChangedFiles | None
    metrics: tuple[MetricRow, ...]
    folds: tuple[Folds, ...]
    fold_notes: tuple[str, ...]

    @property
    def same_run(self) -> bool:
        return self.a.run_id == self.b.run_id

    @property
    def metrics_differ(self) -> bool:
        return any(not row.same for row in self.metrics if not row.context)

    def differing(self) -> list[str]:
        """The sections that differ, in SECTIONS order."""
        found = [section.title for section in self.sections if section.differs]
        return found + (["metrics"] if self.metrics_differ else [])

    def unrecorded(self) -> list[str]:
        """The sections neither run recorded anything of."""
        found = [section.title for section in self.sections if not section.recorded]
        return found + ([] if self.metrics else ["metrics"])


# Shown only where a run has them (an S3 object's version, a binary task's positive label).
OPTIONAL = ("S3 version", "ETag", "positive label")


def _section(title: str, a: dict, b: dict) -> Section:
    keys = list(dict.fromkeys([*a, *b]))
    rows = [Row(k, a.get(k), b.get(k)) for k in keys]
    return Section(title, tuple(r for r in rows if r.name not in OPTIONAL or r.a or r.b))


def _environment_section(a: RunFacts, b: RunFacts) -> Section:
    if a.environment is None or b.environment is None:  # one line, not each package

        def said(packages: dict[str, str] | None) -> str | None:
            return None if packages is None else f"recorded ({len(packages)} packages)"

        return Section(
            "environment", (Row("environment.txt", said(a.environment), said(b.environment)),)
        )
    first = [k for k in ("python", "platform") if k in a.environment or k in b.environment]
    rest = sorted((set(a.environment) | set(b.environment)) - set(first))
    rows = [Row(k, a.environment.get(k), b.environment.get(k)) for k in [*first, *rest]]
    return Section("environment", tuple(rows))


def _split(facts: RunFacts) -> dict[str, str | None]:
    """What decides which rows each fold holds."""
    settings = facts.settings
    values = {key: settings.get(key) for key in SPLIT_KEYS if key != "digest"}
    values["seed"] = settings.get("seed") or settings.get("run.seed")
    return {"digest": facts.data.get("digest"), **values}


def _folds(a: RunFacts, b: RunFacts) -> tuple[tuple[Folds, ...], tuple[str, ...]]:
    if not a.folds or not b.folds:
        missing = [f"run {x}" for x, facts in (("A", a), ("B", b)) if not facts.folds]
        return (), (f"{' and '.join(missing)} recorded no values per fold",)
    split_a, split_b = _split(a), _split(b)
    unknown = [k for k in SPLIT_KEYS if split_a[k] is None or split_b[k] is None]
    if unknown:
        return (), (
            f"not compared fold by fold: whether the folds hold the same rows is not "
            f"recorded ({', '.join(unknown)})",
        )
    other = [k for k in SPLIT_KEYS if split_a[k] != split_b[k]]
    if other:
        return (), (
            f"not compared fold by fold: the folds hold other rows ({', '.join(other)} "
            + ("differs)" if len(other) == 1 else "differ)"),
        )
    found = []
    for name in sorted(set(a.folds) & set(b.folds)):
        steps = sorted(set(a.folds[name]) & set(b.folds[name]))
        if not steps:
            continue
        differences = [b.folds[name][k] - a.folds[name][k] for k in steps]
        lower = any(loss in name for loss in LOWER_IS_BETTER)
        better = [-d if lower else d for d in differences]
        found.append(
            Folds(
                metric=name.removeprefix("cv_"),
                count=len(steps),
                mean=statistics.fmean(differences),
                std=statistics.pstdev(differences),
                ahead=sum(1 for d in better if d > 0),
                behind=sum(1 for d in better if d < 0),
            )
        )
    return tuple(found), ()


def _changed_files(a: RunFacts, b: RunFacts) -> provenance.ChangedFiles | None:
    old, new = a.code["commit"], b.code["commit"]
    if not old or not new or old == new:
        return None
    return provenance.changed_files(old, new, [Path.cwd(), PROJECT_DIR], [*a.sources, *b.sources])


def compare(a: RunFacts, b: RunFacts) -> Comparison:
    names = sorted(set(a.metrics) | set(b.metrics))
    metrics = tuple(
        MetricRow(n, a.metrics.get(n), b.metrics.get(n), n.startswith(baselines.COMPARISON_PREFIX))
        for n in names
    )
    folds, fold_notes = _folds(a, b)
    sections = (
        _section("parameters", a.settings, b.settings),
        _section("code", a.code, b.code),
        _section("data", a.data, b.data),
        _environment_section(a, b),
    )
    return Comparison(a, b, sections, _changed_files(a, b), metrics, folds, fold_notes)


def compare_runs(run_a: str, run_b: str) -> Comparison:
    """Read both runs (once, when they are one) and compare them."""
    client = MlflowClient()
    a = read_run(client, run_a)
    b = a if run_b == run_a else read_run(client, run_b)
    return compare(a, b)
