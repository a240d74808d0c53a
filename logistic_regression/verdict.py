"""A reproduction's verdict: the rerun's metrics, data digest and environment against
what the original run recorded (`compare`), and the table `reproduce` prints.

The verdict rests on what describes the run's own model and data: its CV and test
metrics (exactly, or within a tolerance) and its input digest. Metrics that compare a
run with other runs (`vs_baseline_*`) are context: listed, never deciding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from logistic_regression.packages import Differences, Environment, differences
from logistic_regression.provenance import LEFT_OUT, PATCH_REDACTED
from logistic_regression.tracking.baselines import COMPARISON_PREFIX

if TYPE_CHECKING:
    from logistic_regression.rebuild import Rebuilt
    from logistic_regression.recorded import Recorded

# Metrics that compare a run with other runs: shown as context, never deciding.
CONTEXT_PREFIXES = (COMPARISON_PREFIX,)

Row = tuple[str, float | None, float | None, bool]


@dataclass(frozen=True)
class Comparison:
    metrics: list[Row]  # the run's own metrics: these decide
    digest_matches: bool
    environment: Differences  # what the run imports decides nothing: it explains
    context: list[Row] = field(default_factory=list)  # comparisons with other runs

    @property
    def reproduced(self) -> bool:
        return self.digest_matches and all(match for *_, match in self.metrics)

    @property
    def mismatches(self) -> list[str]:
        """What differs among what decides (metrics by name, then `input_digest`)."""
        names = [name for name, *_, same in self.metrics if not same]
        return names + ([] if self.digest_matches else ["input_digest"])


def is_context(metric: str) -> bool:
    """True for a metric that compares the run with another run (`vs_baseline_*`)."""
    return metric.startswith(CONTEXT_PREFIXES)


def compare(
    recorded: Recorded,
    new_metrics: dict[str, float],
    new_digest: str,
    new_environment: Environment,
    tolerance: float,
    here: frozenset[str] = frozenset(),
) -> Comparison:
    """The rerun against the record. `here`: the packages this kit imports, standing in
    for a record that does not say which packages its run imported."""
    rows: list[Row] = []
    context: list[Row] = []
    for name in sorted(set(recorded.metrics) | set(new_metrics)):
        old, new = recorded.metrics.get(name), new_metrics.get(name)
        same = (
            old is not None
            and new is not None
            and (old == new or math.isclose(old, new, rel_tol=0.0, abs_tol=tolerance))
        )
        (context if is_context(name) else rows).append((name, old, new, same))
    environment = differences(recorded.environment, new_environment, here)
    return Comparison(rows, new_digest == recorded.input_digest, environment, context)


def print_comparison(
    recorded: Recorded,
    new_run_id: str,
    result: Comparison,
    tolerance: float,
    rebuilt: Rebuilt | None = None,
) -> None:
    print(f"Reproduction of run {recorded.run_id} ({recorded.run_name}) as run {new_run_id}")
    hidden = recorded.tags.get(PATCH_REDACTED)
    print(
        f"  code: {recorded.repository} @ {recorded.commit[:12]}"
        + (" + recorded uncommitted.patch" if recorded.patch else "")
        + (f" ({hidden} secret values in it recorded as ***)" if hidden else "")
    )
    if left_out := recorded.tags.get(LEFT_OUT):
        print(
            f"  not recorded: untracked files too large or binary for the patch ({left_out}); "
            "the rerun ran without them"
        )
    rule = "exact" if tolerance == 0 else f"within {tolerance:g}"
    print(f"  metrics ({rule}):")
    width = max((len(name) for name, *_ in result.metrics + result.context), default=6)
    print(f"    {'metric':<{width}}  {'original':>20}  {'rerun':>20}  match")
    for name, old, new, same in result.metrics:
        shown_old = "missing" if old is None else repr(old)
        shown_new = "missing" if new is None else repr(new)
        print(f"    {name:<{width}}  {shown_old:>20}  {shown_new:>20}  {'yes' if same else 'NO'}")
    if result.context:
        print("  context (compares with other runs, e.g. the baseline; not part of the verdict):")
        for name, old, new, same in result.context:
            shown_old = "missing" if old is None else repr(old)
            shown_new = "missing" if new is None else repr(new)
            print(
                f"    {name:<{width}}  {shown_old:>20}  {shown_new:>20}  "
                f"{'same' if same else 'differs'}"
            )
    print(f"  data digest: {'same' if result.digest_matches else 'DIFFERENT'}")
    print_environment(result.environment, rebuilt)
    print(f"  verdict: {'reproduced' if result.reproduced else 'NOT reproduced'}")


def print_environment(found: Differences, rebuilt: Rebuilt | None) -> None:
    """The environment lines: how the rerun's environment was made, what differs among
    what the run imports, and the other packages that differ as one folded line."""
    if rebuilt is not None:
        where = "reused from" if rebuilt.reused else "cached in"
        print(f"  environment: rebuilt from the record ({where} {rebuilt.root})")
    else:
        print("  environment: this environment (--env current)")
    if found.relevant:
        print("    differences (original -> rerun) among what the run imports:")
        for package, before, after in found.relevant:
            print(f"      {package}: {before or 'absent'} -> {after or 'absent'}")
    else:
        print("    identical in Python and every package the run imports")
    if found.others:
        shown = ", ".join(found.others[:8]) + (", ..." if len(found.others) > 8 else "")
        print(
            f"    ({len(found.others)} other packages differ, none of which the run imports: "
            f"{shown})"
        )
