"""The kit on a table a hundred times the demo, against the plain script a user would
write instead, side by side in one invocation.

For each size, a synthetic CSV (50 numeric columns with a few missing cells, 3 text
columns, a 0/1 target) is written once; then, alternating which goes first:

* kit: `python -m logistic_regression.train data.input=<csv> data.target=target`, with
  its own SQLite store and spool in a temporary folder (the full run: dataset logged,
  5-fold CV, model, predictions, report, artifacts);
* plain: one script that reads the CSV with pandas, makes the same split, runs 5-fold
  `cross_validate` of the same pipeline (impute + scale, impute + one-hot, logistic
  regression), fits, scores the test part and logs the metrics in one MLflow run.

Prints wall time and peak memory of each, and the ratios kit/plain against the targets
(wall <= 1.3x, memory <= 1.5x). Memory is the whole process tree, sampled every 50 ms,
as PSS (each page shared by several processes counted once, split between them) and as
the plain sum of RSS. The kit's background workers are forked from the training
process and share its pages copy-on-write: summed RSS counts those pages once per
process, so it overstates what the tree really holds; PSS is the honest total.

    python bench/data_scale.py [--rows 200000 1000000] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

WALL_TARGET, MEMORY_TARGET = 1.3, 1.5
NUMERIC, CATEGORIES = 50, {"region": 8, "channel": 4, "segment": 20}

PLAIN = textwrap.dedent(
    """
    import sys

    import mlflow
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_validate, train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = pd.read_csv(sys.argv[1])
    X, y = frame.drop(columns="target"), frame["target"]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=42
    )
    numeric = list(X.select_dtypes("number").columns)
    text = [c for c in X.columns if c not in numeric]
    model = Pipeline([
        ("preprocess", ColumnTransformer([
            ("numeric", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]),
             numeric),
            ("categorical", Pipeline([
                ("impute", SimpleImputer(strategy="most_frequent")),
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]), text),
        ])),
        ("classifier", LogisticRegression(max_iter=1000, random_state=42)),
    ])
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=42)
    scoring = ["accuracy", "roc_auc", "neg_log_loss", "f1", "precision", "recall"]
    cv = cross_validate(model, X_train, y_train, cv=folds, scoring=scoring)
    model.fit(X_train, y_train)
    probability = model.predict_proba(X_test)[:, 1]
    from sklearn.metrics import roc_auc_score
    with mlflow.start_run():
        mlflow.log_metrics({f"cv_{m}_mean": cv[f"test_{m}"].mean() for m in scoring})
        mlflow.log_metric("test_roc_auc", roc_auc_score(y_test, probability))
    """
)


def make_table(rows: int, path: Path) -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(rows, NUMERIC)).astype("float64")
    score = features[:, :5].sum(axis=1) + rng.normal(scale=2.0, size=rows)
    features[rng.random(size=features.shape) < 0.001] = np.nan  # a few missing cells
    frame = pd.DataFrame(features, columns=[f"x{i}" for i in range(NUMERIC)])
    for name, count in CATEGORIES.items():
        frame[name] = rng.choice([f"{name}_{k}" for k in range(count)], size=rows)
    frame["target"] = (score > 0).astype(int)
    frame.to_csv(path, index=False)


def tree_memory(root: int) -> tuple[int, int]:
    """(PSS, RSS) in bytes of `root` and every process below it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    members, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        members.update(children)
        frontier.extend(children)
    pss = rss = 0
    for pid in members:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
        except OSError:
            continue
    return pss, rss


def measure(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int, int]:
    """(wall seconds, peak PSS, peak RSS of the process tree in bytes); fails loudly."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    peak_pss = peak_rss = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_pss, peak_rss
        while not done.is_set():
            pss, rss = tree_memory(process.pid)
            peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = process.communicate()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{command[:4]} failed:\n{err.decode()[-2000:]}")
    return elapsed, peak_pss, peak_rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    print(f"{'rows':>9} {'':5} {'wall s':>8} {'PSS MB':>8} {'RSS MB':>8}")
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as temp:
            folder = Path(temp)
            table = folder / "table.csv"
            make_table(rows, table)
            (folder / "plain.py").write_text(PLAIN)
            results: dict[str, list[tuple[float, int, int]]] = {"kit": [], "plain": []}
            for repeat in range(args.repeats):
                order = ["kit", "plain"] if repeat % 2 == 0 else ["plain", "kit"]
                for who in order:
                    work = folder / f"{who}-{repeat}"
                    work.mkdir()
                    env = {
                        **os.environ,
                        "MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlflow.db",
                        "LOGREG_SPOOL_DIR": str(work / "spool"),
                    }
                    command = (
                        [
                            sys.executable,
                            "-m",
                            "logistic_regression.train",
                            f"data.input={table}",
                            "data.target=target",
                        ]
                        if who == "kit"
                        else [sys.executable, str(folder / "plain.py"), str(table)]
                    )
                    results[who].append(measure(command, work, env))
            medians = {
                who: [statistics.median(run[i] for run in runs) for i in range(3)]
                for who, runs in results.items()
            }
            for who, (wall, pss, rss) in medians.items():
                print(f"{rows:>9} {who:5} {wall:8.1f} {pss / 2**20:8.0f} {rss / 2**20:8.0f}")
            kit, plain = medians["kit"], medians["plain"]
            print(
                f"{rows:>9} ratio wall {kit[0] / plain[0]:.2f}x (target <= {WALL_TARGET}x), "
                f"memory PSS {kit[1] / plain[1]:.2f}x (target <= {MEMORY_TARGET}x), "
                f"summed RSS {kit[2] / plain[2]:.2f}x"
            )


if __name__ == "__main__":
    main()
