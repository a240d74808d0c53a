"""What a sweep in one process saves, measured side by side in one invocation.

On a copy of the kit, each against its own fresh SQLite store:

* separate: 20 `mlflow run . -P C=... -P penalty=...` invocations, one per configuration;
* sweep:    one `mlflow run . -e sweep` over the same 20 configurations (nested runs);
* joblib:   the same sweep with `hydra/launcher=joblib` and n_jobs=1, then n_jobs=2.

Prints the wall times and the ratios (target: sweep >= 5x faster than separate runs).

    python bench/sweep.py [--configurations 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import copy_kit, timed_run  # noqa: E402

TARGET_SPEEDUP = 5.0
C_VALUES = ("0.001", "0.003", "0.01", "0.03", "0.1", "0.3", "1", "3", "10", "30")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configurations", type=int, default=20, help="even, <= 20")
    args = parser.parse_args()
    values = C_VALUES[: args.configurations // 2]
    configurations = [(c, p) for c in values for p in ("l1", "l2")]
    sweep = f"model.C={','.join(values)} model.penalty=l1,l2 model.solver=liblinear"
    with tempfile.TemporaryDirectory(prefix="kit-bench-sweep-") as scratch:
        root = Path(scratch)
        kit = copy_kit(root / "kit")
        timed_run(kit, root / "warm-up", "-P", "C=1")  # file caches, byte-compiled modules

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
    n = len(configurations)
    speedup = separate / one_process
    print(f"{n} configurations, 2 cores")
    print(f"  {n} separate mlflow run      {separate:7.1f} s  ({separate / n:.2f} s each)")
    print(f"  one mlflow run -e sweep     {one_process:7.1f} s  ({one_process / n:.2f} s each)")
    print(f"  speedup                     {speedup:7.1f}x  (target >= {TARGET_SPEEDUP:g}x)")
    print(f"  joblib n_jobs=1             {joblib[1]:7.1f} s")
    print(
        f"  joblib n_jobs=2             {joblib[2]:7.1f} s  "
        f"({joblib[1] / joblib[2]:.2f}x faster than n_jobs=1)"
    )
    return 0 if speedup >= TARGET_SPEEDUP else 1


if __name__ == "__main__":
    sys.exit(main())
