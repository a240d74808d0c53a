"""A timestamp column and a 5,000-level text column cost a run little, side by side in
one invocation (target: within 2x the time and memory of the same table without them).

* plain: a table of numbers and two few-level text columns, as `train` runs it;
* wide: the same table with a `time_hour` timestamp (a different value in nearly every
  row: the kit leaves dates out with a note) and an `emp_title` of 5,000 values, each in
  a few rows (the kit keeps its 49 most frequent, `preprocessing.max_categories=50`).

Each trial is a whole `python -m logistic_regression.train` in a fresh interpreter
(wall time, and the peak resident memory of the process tree it waited for); trials
alternate and medians are printed with the ratio wide / plain. Then, in this process,
the fitted pipeline's preprocessing + fit on the wide table with the one-hot output
dense against sparse (the kit's): the measurement behind the choice.

    python bench/wide_columns.py [--rows 20000] [--trials 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parent.parent


def tables(rows: int, folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, rows)
    plain = pd.DataFrame({f"x{i}": rng.normal(size=rows) + label * (i % 3) for i in range(8)})
    plain["grade"] = rng.choice(list("ABCDEFG"), rows)
    plain["home"] = rng.choice(["rent", "own", "mortgage"], rows)
    plain["label"] = label
    wide = plain.copy()
    wide["time_hour"] = pd.date_range("2013-01-01", periods=rows, freq="h").strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    wide["emp_title"] = [f"title {t}" for t in rng.integers(0, 5000, rows)]
    paths = {"plain": folder / "plain.csv", "wide": folder / "wide.csv"}
    plain.to_csv(paths["plain"], index=False)
    wide.to_csv(paths["wide"], index=False)
    return paths


def trial(path: Path, folder: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one training run on `path`."""
    store = folder / f"store-{time.monotonic_ns()}.db"
    args = [
        sys.executable, "-m", "logistic_regression.train", f"data.input={path}",
        f"tracking.uri=sqlite:///{store}", f"data.output={folder / 'outputs'}",
        "tracking.experiment_name=bench", "data.target=label",
    ]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(
        args, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}"},
    )  # fmt: skip
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"the run on {path.name} failed: {process.stderr.read().decode()[-500:]}")
    return seconds, usage.ru_maxrss / 1024


def dense_against_sparse(path: Path) -> dict[str, tuple[float, float]]:
    """(seconds, peak traced MB) of fitting the kit's pipeline on the wide table, with
    the one-hot output dense and sparse."""
    from logistic_regression import data, model
    from logistic_regression.config import ModelConfig, PreprocessingConfig

    dataset = data.load(str(path), "label")
    found = {}
    for kind in ("dense", "sparse", "dense", "sparse"):
        pipeline = model.build(ModelConfig(), 42, PreprocessingConfig(), dataset.features)
        pipeline.set_params(preprocess__categorical__onehot__sparse_output=kind == "sparse")
        tracemalloc.start()
        started = time.perf_counter()
        pipeline.fit(dataset.features, dataset.target)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        found[kind] = (seconds, peak)  # the second of each: imports and caches warm
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-wide-") as scratch:
        folder = Path(scratch)
        paths = tables(args.rows, folder)
        measured: dict[str, list[tuple[float, float]]] = {"plain": [], "wide": []}
        for index in range(args.trials):
            order = ("plain", "wide") if index % 2 == 0 else ("wide", "plain")
            for name in order:
                measured[name].append(trial(paths[name], folder))
        medians = {
            name: (statistics.median(t for t, _ in runs), statistics.median(m for _, m in runs))
            for name, runs in measured.items()
        }
        print(f"{args.rows:,} rows, median of {args.trials} runs each (python -m ...train)")
        print(f"  {'':<44}{'wall s':>8}{'peak MB':>10}")
        print(f"  {'plain table':<44}{medians['plain'][0]:>8.2f}{medians['plain'][1]:>10.0f}")
        label = "+ timestamp + 5,000-level text column"
        print(f"  {label:<44}{medians['wide'][0]:>8.2f}{medians['wide'][1]:>10.0f}")
        time_ratio = medians["wide"][0] / medians["plain"][0]
        memory_ratio = medians["wide"][1] / medians["plain"][1]
        print(
            f"  ratio wide / plain: time {time_ratio:.2f}, memory {memory_ratio:.2f} (target <= 2)"
        )
        fits = dense_against_sparse(paths["wide"])
        dense, sparse = fits["dense"], fits["sparse"]
        print("one fit of the pipeline on the wide table, one-hot output dense / sparse:")
        print(f"  dense {dense[0]:.2f} s, {dense[1]:.0f} MB traced; sparse {sparse[0]:.2f} s, "
              f"{sparse[1]:.0f} MB traced; ratio sparse / dense: time "
              f"{sparse[0] / dense[0]:.2f}, memory {sparse[1] / dense[1]:.2f}")  # fmt: skip
    return 0 if time_ratio <= 2 and memory_ratio <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
