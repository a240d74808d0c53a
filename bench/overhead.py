"""What the kit costs over a bare MLflow project, measured side by side in one invocation.

Both projects run through `mlflow run <dir> --env-manager local` on the same dataset,
each against its own fresh SQLite store in a temporary folder:

* kit: this repository (cross-validation, report, model, dataset, provenance, artifacts);
* minimal: one script that fits the same scaler + LogisticRegression and logs one metric.

Runs alternate (kit, minimal, kit, minimal, ...) so drift on the machine hits both.
Prints each wall time, the medians and the ratio kit/minimal (target: <= 1.15, issue 19).

    python bench/overhead.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.15
PARAMS = ("-P", "C=0.5")  # the same run for both projects

MINIMAL_MLPROJECT = """\
name: minimal
entry_points:
  main:
    parameters:
      C: {type: float, default: 1.0}
    command: "python train.py {C}"
"""

MINIMAL_TRAIN = """\
import sys

import mlflow
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

X, y = load_breast_cancer(return_X_y=True, as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.2, stratify=y, random_state=42
)
model = make_pipeline(StandardScaler(), LogisticRegression(C=float(sys.argv[1]), max_iter=1000))
model.fit(X_train, y_train)
with mlflow.start_run():
    mlflow.log_metric("test_accuracy", model.score(X_test, y_test))
"""


def copy_kit(destination: Path) -> Path:
    """The kit's tracked files only (no local mlruns/ or mlflow.db)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=PROJECT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = PROJECT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def write_minimal(destination: Path) -> Path:
    destination.mkdir(parents=True)
    (destination / "MLproject").write_text(MINIMAL_MLPROJECT)
    (destination / "train.py").write_text(MINIMAL_TRAIN)
    return destination


def timed_run(project: Path, store: Path, *args: str) -> float:
    """Seconds for `mlflow run <project> --env-manager local <args>` against `store`'s own
    SQLite file and spool, with no MLFLOW_/LOGREG_ settings from the caller's shell."""
    store.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LOGREG_"))}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    env["LOGREG_SPOOL_DIR"] = str(store / "spool")
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mlflow", "run", str(project), "--env-manager", "local", *args],
        cwd=store,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kit-bench-") as tmp:
        root = Path(tmp)
        kit = copy_kit(root / "kit")
        minimal = write_minimal(root / "minimal")
        stores = {name: root / f"store-{name}" for name in ("kit", "minimal")}
        for store in stores.values():
            store.mkdir()
        # One warm-up each: the first run creates the SQLite schema and fills OS caches.
        timed_run(kit, stores["kit"], *PARAMS)
        timed_run(minimal, stores["minimal"], *PARAMS)
        times: dict[str, list[float]] = {"kit": [], "minimal": []}
        for i in range(args.repeats):
            for name, project in (("kit", kit), ("minimal", minimal)):
                seconds = timed_run(project, stores[name], *PARAMS)
                times[name].append(seconds)
                print(f"  run {i + 1}/{args.repeats} {name:8s} {seconds:6.2f} s", flush=True)
    kit_median = statistics.median(times["kit"])
    minimal_median = statistics.median(times["minimal"])
    ratio = kit_median / minimal_median
    for name, median in (("kit", kit_median), ("minimal", minimal_median)):
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"{name:8s} median {median:6.2f} s  (runs: {runs})")
    print(f"ratio kit/minimal = {ratio:.2f}  (target <= {TARGET_RATIO})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
