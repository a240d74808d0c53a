"""What a sweep in one process saves, measured side by side in one invocation.

On a copy of the kit, each against its own fresh SQLite store:

* separate: 20 `mlflow run . -P C=... -P penalty=...` invocations, one per configuration;
* sweep:    one `mlflow run . -e sweep` over the same 20 configurations (nested runs);
* joblib:   the same sweep with `hydra/launcher=joblib` and n_jobs=1, then n_jobs=2;
* ray:      the same sweep with `hydra/launcher=ray` on a two-node Ray cluster on
            127.0.0.1 (one CPU each, tests/servers.py), already started (not timed).

Prints the wall times, the sweeps' configurations per minute and the ratios (target:
sweep >= 5x faster than separate runs). --sweeps-only leaves out the 20 separate runs
(and the target) for a shorter run; --no-ray leaves out Ray (without the `ray` extra).

    python bench/sweep.py [--configurations 20] [--sweeps-only] [--no-ray]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from overhead import copy_kit, timed_run  # noqa: E402

TARGET_SPEEDUP = 5.0
C_VALUES = ("0.001", "0.003", "0.01", "0.03", "0.1", "0.3", "1", "3", "10", "30")


def per_minute(n: int, seconds: float) -> str:
    return f"{n / seconds * 60:5.1f} configurations/min"


def ray_sweep(kit: Path, store: Path, sweep: str) -> float:
    """The sweep with the Ray launcher on a fresh two-node cluster whose workers import
    `kit` (started and stopped outside the timing)."""
    import os

    from servers import ray_cluster

    with ray_cluster(kit, store / "ray-logs") as cluster:
        os.environ.update(cluster.environment())  # the driver reaches it on 127.0.0.1
        launcher = f"hydra/launcher=ray hydra.launcher.ray.init.address={cluster.address}"
        return timed_run(kit, store, "-e", "sweep", "-P", f"sweep={sweep} {launcher}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configurations", type=int, default=20, help="even, <= 20")
    parser.add_argument("--sweeps-only", action="store_true", help="no separate runs")
    parser.add_argument("--no-ray", action="store_true", help="no Ray sweep")
    args = parser.parse_args()
    values = C_VALUES[: args.configurations // 2]
    configurations = [(c, p) for c in values for p in ("l1", "l2")]
    sweep = f"model.C={','.join(values)} model.penalty=l1,l2 model.solver=liblinear"
    with tempfile.TemporaryDirectory(prefix="kit-bench-sweep-") as scratch:
        root = Path(scratch)
        kit = copy_kit(root / "kit")
        timed_run(kit, root / "warm-up", "-P", "C=1")  # file caches, byte-compiled modules

        separate = 0.0
        if not args.sweeps_only:
            separate = sum(
                timed_run(
                    kit,
                    root / "separate",
                    "-P",
                    f"C={c}",
                    "-P",
                    f"penalty={p}",
                    "-P",
                    "solver=liblinear",
                )
                for c, p in configurations
            )
        one_process = timed_run(kit, root / "sweep", "-e", "sweep", "-P", f"sweep={sweep}")
        joblib = {
            jobs: timed_run(
                kit,
                root / f"joblib-{jobs}",
                "-e",
                "sweep",
                "-P",
                f"sweep={sweep} hydra/launcher=joblib hydra.launcher.n_jobs={jobs}",
            )
            for jobs in (1, 2)
        }
        ray = None if args.no_ray else ray_sweep(kit, root / "ray", sweep)
    n = len(configurations)
    print(f"{n} configurations, 2 cores")
    if not args.sweeps_only:
        print(f"  {n} separate mlflow run      {separate:7.1f} s  ({separate / n:.2f} s each)")
    print(f"  one mlflow run -e sweep     {one_process:7.1f} s  ({per_minute(n, one_process)})")
    if not args.sweeps_only:
        speedup = separate / one_process
        print(f"  speedup                     {speedup:7.1f}x  (target >= {TARGET_SPEEDUP:g}x)")
    print(f"  joblib n_jobs=1             {joblib[1]:7.1f} s  ({per_minute(n, joblib[1])})")
    print(
        f"  joblib n_jobs=2             {joblib[2]:7.1f} s  ({per_minute(n, joblib[2])}; "
        f"{joblib[1] / joblib[2]:.2f}x faster than n_jobs=1)"
    )
    if ray is not None:
        print(
            f"  ray, 2 nodes x 1 CPU        {ray:7.1f} s  ({per_minute(n, ray)}; "
            f"{one_process / ray:.2f}x the in-process sweep)"
        )
    return 0 if args.sweeps_only or separate / one_process >= TARGET_SPEEDUP else 1


if __name__ == "__main__":
    sys.exit(main())
