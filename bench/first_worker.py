"""How soon a run's first background result arrives, today's design against the one it
replaced, side by side in one invocation.

* kit: `logistic_regression.background.Background` (workers forked once, from a
  single-threaded process, then the thread pools released);
* fork-after-threads: what the kit did before: a fork-context pool created after the
  numeric libraries started their thread pools (unsafe, and warned about on 3.12+).

Each trial is a fresh interpreter that imports what a run imports, fits the run's model,
then times enter -> the first `save_model` result (the worker also imports skops on the
way, as in a run). Trials alternate, and so does which contender goes first; medians
are printed with the ratio kit / old.

    python bench/first_worker.py [--trials 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent

TRIAL = """
import json, multiprocessing, os, sys, tempfile, time
from concurrent.futures import ProcessPoolExecutor
from logistic_regression import environment
environment.hold_thread_pools()  # as a command does, first
import logistic_regression.pipeline  # everything a run imports
from sklearn.datasets import load_breast_cancer
from logistic_regression import model, report
from logistic_regression.background import Background
from logistic_regression.config import ModelConfig
from logistic_regression.tracking.models import save_model

X, y = load_breast_cancer(return_X_y=True, as_frame=True)
fitted = model.build(ModelConfig(), 42).fit(X, y)
folder = tempfile.mkdtemp()
args = (fitted, X.head(5), folder + "/model", "run", "m-1", "file:///m-1")
started = time.perf_counter()
if sys.argv[1] == "kit":
    with Background(report.warm_up) as background:  # as pipeline.run
        background.submit(save_model, *args)()
else:
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))
    pool.submit(report.warm_up)
    pool.submit(save_model, *args).result()
    pool.shutdown()
print(json.dumps(time.perf_counter() - started))
"""


def trial(contender: str) -> float:
    env = dict(os.environ)
    if contender == "fork-after-threads":  # numeric thread pools start at import, as before
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(len(os.sched_getaffinity(0)))
        env.pop("JE_ARROW_MALLOC_CONF", None)
    else:
        for name in (
            "OPENBLAS_NUM_THREADS",
            "OMP_NUM_THREADS",
            "MKL_NUM_THREADS",
            "JE_ARROW_MALLOC_CONF",
        ):
            env.pop(name, None)
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "trial.py"
        script.write_text(TRIAL)
        done = subprocess.run(
            [sys.executable, str(script), contender],
            capture_output=True,
            text=True,
            env=env,
            cwd=folder,
            check=True,
        )
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"kit": [], "fork-after-threads": []}
    for n in range(args.trials):
        order = list(times) if n % 2 == 0 else list(reversed(times))  # neither always first
        for contender in order:
            seconds = trial(contender)
            times[contender].append(seconds)
            print(f"trial {n + 1} {contender:>18}: {seconds:.3f} s", flush=True)
    kit, old = (statistics.median(times[c]) for c in times)
    print(f"median kit {kit:.3f} s, fork-after-threads {old:.3f} s, ratio {kit / old:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
