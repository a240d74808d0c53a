"""MLflow Projects reproducibility kit: a logistic-regression pipeline whose runs can be re-run.

Importing the package holds back the thread pools of numeric libraries (OpenBLAS,
OpenMP, MKL, pyarrow's jemalloc) that would otherwise start at import, so that the
background workers can be forked while the process still runs a single thread
(`background.py`), which is when fork is safe. `background.release_thread_pools` lifts
the limits again right after the fork, before any training. Values the user set are
left alone, and the processes the kit starts never inherit the kit's own limits
(`background.child_environment`).
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
# The ones this process set itself (the user set none of them); emptied on release.
HELD: set[str] = {name for name in THREAD_POOL_VARIABLES if name not in os.environ}
for _name in HELD:
    os.environ[_name] = THREAD_POOL_VARIABLES[_name]
