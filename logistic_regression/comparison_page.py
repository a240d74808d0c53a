"""A `Comparison` shown: as text for the terminal, or as one self-contained HTML page in
the report's style (templates/compare.html.j2: autoescaped, no script, tables that stack
into one column on a phone). Pure: a comparison in, text out; what differs first, every
row only with `show_all`."""

from __future__ import annotations

from dataclasses import dataclass

from logistic_regression.comparison import SECTIONS, Comparison, MetricRow, Row, Section
from logistic_regression.report import TEMPLATES

NOT_RECORDED = "not recorded"
MAX_FILES = 50  # files changed between the commits listed; the rest counted


def value(text: str | None) -> str:
    if text is None:
        return NOT_RECORDED
    return text if text != "" else "''"


def number(x: float | None) -> str:
    return NOT_RECORDED if x is None else f"{x:.6f}"


def difference(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:+.2e}" if x and abs(x) < 5e-7 else f"{x:+.6f}"


def summary(c: Comparison) -> str:
    """One line: what differs, or that nothing does."""
    differing = c.differing()
    if not differing:
        said = f"no differences in {', '.join(SECTIONS)}"
        if c.same_run:
            said = f"A and B are the same run: {said}"
        unrecorded = c.unrecorded()
        return said + (f" (recorded by neither run: {', '.join(unrecorded)})" if unrecorded else "")
    same = [s for s in SECTIONS if s not in differing]
    return f"differences in {', '.join(differing)}" + (
        f"; the same: {', '.join(same)}" if same else ""
    )


@dataclass(frozen=True)
class Shown:
    """A section as shown: its title, one line about it, the rows shown, more lines."""

    title: str
    headline: str
    rows: tuple[Row, ...]
    lines: tuple[str, ...] = ()


def _headline(section: Section) -> str:
    if not section.recorded:
        return "not recorded by either run"
    differing = sum(1 for row in section.rows if not row.same)
    if not differing:
        return f"the same ({len(section.rows)} compared)"
    return f"{differing} of {len(section.rows)} differ"


def _files(c: Comparison) -> tuple[str, ...]:
    old, new = c.a.code.get("commit"), c.b.code.get("commit")
    if not old or not new or old == new:
        return ()
    if c.files is None:
        return (
            "files changed between the commits: not known (neither this checkout's "
            "repository nor a clone of a repository the runs recorded holds both commits)",
        )
    listed = [f"{status}  {path}" for status, path in c.files.files[:MAX_FILES]]
    more = len(c.files.files) - len(listed)
    if more:
        listed.append(f"... and {more} more (git diff --name-status {old[:12]} {new[:12]})")
    head = f"files changed between the commits (in {c.files.where}): {c.files.summary or 'none'}"
    return (head, *listed)


def shown_sections(c: Comparison, show_all: bool) -> list[Shown]:
    shown = []
    for section in c.sections:
        rows = section.rows if show_all else tuple(r for r in section.rows if not r.same)
        extra = _files(c) if section.title == "code" else ()
        shown.append(Shown(section.title, _headline(section), rows, extra))
    return shown


def metric_rows(c: Comparison, show_all: bool, context: bool = False) -> list[MetricRow]:
    return [r for r in c.metrics if r.context == context and (show_all or not r.same)]


def metrics_headline(c: Comparison) -> str:
    own = [r for r in c.metrics if not r.context]
    if not own:
        return "not recorded by either run"
    differing = sum(1 for r in own if not r.same)
    return f"{differing} of {len(own)} differ" if differing else f"the same ({len(own)} compared)"


FOLDS_CAVEAT = (
    "B - A fold by fold, paired: an indication only, not a test (the folds share their "
    "training rows, so their differences are not independent)"
)


def fold_lines(c: Comparison, show_all: bool) -> list[str]:
    """One line per metric whose folds differ (every one with `show_all`), then why
    folds were not paired, if they were not."""
    lines = []
    for f in c.folds:
        tied = f.count - f.ahead - f.behind
        if tied == f.count and not show_all:
            continue
        lines.append(
            f"{f.metric}: mean {difference(f.mean)}, std {f.std:.6f}; B better in {f.ahead} "
            f"of {f.count} folds, worse in {f.behind}" + (f", tied in {tied}" if tied else "")
        )
    return lines + list(c.fold_notes)


def text(c: Comparison, show_all: bool = False) -> str:
    lines = [f"compare run A {c.a.run_id} ({c.a.name}) with run B {c.b.run_id} ({c.b.name})"]
    for label, facts in (("A", c.a), ("B", c.b)):
        origin = f"; {facts.origin}" if facts.origin else ""
        lines.append(f"  {label}: {facts.status} in experiment {facts.experiment!r}{origin}")
    lines.append(summary(c))
    for section in shown_sections(c, show_all):
        arrow = " (A -> B)" if any(not row.same for row in section.rows) else ""
        lines.append(f"{section.title}: {section.headline}{arrow}")
        for row in section.rows:
            lines.append(
                f"  {row.name}: {value(row.a)}" + ("" if row.same else f" -> {value(row.b)}")
            )
        lines += [f"  {line}" for line in section.lines[:1]]  # then the files, under it
        lines += [f"    {line}" for line in section.lines[1:]]
    lines.append(f"metrics: {metrics_headline(c)}")
    rows = metric_rows(c, show_all)
    if rows:
        width = max(len(r.name) for r in rows)
        lines.append(f"  {'metric':<{width}}  {'A':>10}  {'B':>10}  {'B - A':>10}")
        for r in rows:
            lines.append(
                f"  {r.name:<{width}}  {number(r.a):>10}  {number(r.b):>10}  "
                f"{difference(r.diff):>10}"
            )
    folds = fold_lines(c, show_all)
    if c.folds and len(folds) > len(c.fold_notes):
        lines.append(f"  {FOLDS_CAVEAT}:")
        lines += [f"    {line}" for line in folds]
    else:
        lines += [f"  {line}" for line in folds]
    context = metric_rows(c, show_all, context=True)
    if context:
        lines.append("  comparisons with each run's baseline at the time (context, not counted):")
        lines += [f"    {r.name}: {number(r.a)} -> {number(r.b)}" for r in context]
    return "\n".join(lines)


def html(c: Comparison, show_all: bool = False) -> str:
    folds = fold_lines(c, show_all)
    return TEMPLATES.get_template("compare.html.j2").render(
        c=c,
        summary=summary(c),
        sections=shown_sections(c, show_all),
        metrics=metric_rows(c, show_all),
        context=metric_rows(c, show_all, context=True),
        metrics_headline=metrics_headline(c),
        folds=folds,
        folds_caveat=FOLDS_CAVEAT if len(folds) > len(c.fold_notes) else "",
        value=value,
        number=number,
        difference=difference,
        show_all=show_all,
    )
