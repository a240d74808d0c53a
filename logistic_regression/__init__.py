"""MLflow Projects reproducibility kit: a logistic-regression pipeline whose runs can be re-run.

Importing the package holds back the thread pools of numeric libraries (OpenBLAS,
OpenMP, MKL, pyarrow's jemalloc) that would otherwise start at import, so that the
background workers can be forked while the process still runs a single thread
(`background.py`), which is when fork is safe. `background.release_thread_pools` lifts
the limits again as soon as the workers exist, before any training. Values the user set
are left alone.
"""

import os

__version__ = "0.1.0"

# Variable -> value that keeps its library from starting threads at import.
THREAD_POOL_VARIABLES = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "JE_ARROW_MALLOC_CONF": "background_thread:false",
}
# Which of them the kit set (not the user): inherited by the kit's own subprocesses, so
# that they too lift what the kit held back, and never what a user chose.
HELD_VARIABLE = "LOGREG_HELD_THREAD_POOLS"


def _hold_thread_pools() -> None:
    held = set(os.environ.get(HELD_VARIABLE, "").split())
    held |= {name for name in THREAD_POOL_VARIABLES if name not in os.environ}
    for name in held & THREAD_POOL_VARIABLES.keys():
        os.environ[name] = THREAD_POOL_VARIABLES[name]
    os.environ[HELD_VARIABLE] = " ".join(sorted(held))


_hold_thread_pools()
