"""The process environment, where the kit must use it as a channel: the one module that
writes `os.environ` (tests/test_layout.py keeps it so).

Each variable below is written because what reads it offers no other public way in:

- `LOGREG_PARENT_RUN_ID`: a sweep's parent run, for its configurations. Hydra's
  launchers start a configuration in this process, in joblib's worker processes or on a
  Ray node; the environment is the one thing all of them pass on (Ray's workers get it
  as a task argument, `ray_launcher.forwarded_environment`).
- `HYDRA_FULL_ERROR`: Hydra's command line (`hydra.main`) reads it to raise its errors
  instead of printing them with their usage text; the kit turns them into one line.
- The numeric libraries' thread pools (OpenBLAS, OpenMP, MKL, pyarrow's jemalloc) start
  their threads when they load, and read these variables then: each command holds them
  (`hold_thread_pools`) before it imports them, so that the background worker can be
  forked while the process still runs a single thread (`background.py`), and releases
  them right after the fork. Importing the package changes nothing.
- `MLFLOW_HTTP_REQUEST_MAX_RETRIES` / `MLFLOW_HTTP_REQUEST_TIMEOUT`, around the calls an
  error path makes (`tracking.runs.bounded_store`): MLflow's client reads them at each
  request and takes no per-call setting. (No other thread of the kit talks HTTP to the
  store meanwhile: uploads to a server run in the uploader's own process.)
- `MLFLOW_S3_ENDPOINT_URL`, from `storage.endpoint`: MLflow's S3 artifact repository
  reads the endpoint only from there, and the kit's S3 access must agree with it.
- `MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false` (unless the user set it), for commands that
  download a run's files: MLflow draws a bar for each around the kit's one-line output.

Not the environment, but the same kind of channel: `sys.argv`, which `hydra.main` reads
its command line from (`hydra_command_line`), and the umask, which decides the mode of
every file any library creates for the kit (`private_files`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

PARENT_VARIABLE = "LOGREG_PARENT_RUN_ID"
HYDRA_FULL_ERROR = "HYDRA_FULL_ERROR"
# Variable -> value that keeps its library from starting threads when it loads.
THREAD_POOL_VARIABLES = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "JE_ARROW_MALLOC_CONF": "background_thread:false",
}
# The ones this process set itself (the user set none of them), until released.
_held: set[str] = set()


def hold_thread_pools() -> None:
    """(A command's first step, before numpy and pyarrow load.) Each thread-pool variable
    the user did not set is set to keep its library single-threaded at load. Once they
    are loaded (the kit used as a library, a test runner) it is too late: nothing is set."""
    if any(module in sys.modules for module in ("numpy", "pyarrow")):
        return
    for name, value in THREAD_POOL_VARIABLES.items():
        if name not in os.environ:
            os.environ[name] = value
            _held.add(name)


def release_thread_pools() -> list[str]:
    """The held variables removed again (the user's own stay); their names."""
    released = sorted(_held)
    _held.clear()
    for name in released:
        os.environ.pop(name, None)
    return released


def for_child(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a process the kit starts (a reproduction, the uploader, the
    tracking server): the user's, without the thread limits this process holds, with
    `extra` added."""
    kept = {name: value for name, value in os.environ.items() if name not in _held}
    return {**kept, **(extra or {})}


# What a rerun of recorded code needs from the environment: the system's basics, the
# Python it runs on, where it records (MLFLOW_*: the store and its login), where its data
# is (AWS_*: the S3 credential chain), the kit's spool and webhook (a reproduction is a
# run, and tells the hook it ended). Not whatever else the shell holds.
RERUN_NAMES = frozenset(
    "PATH HOME USER LOGNAME LANG LANGUAGE TZ TMPDIR TEMP TMP TERM SHELL VIRTUAL_ENV "
    "SSL_CERT_FILE SSL_CERT_DIR REQUESTS_CA_BUNDLE CURL_CA_BUNDLE GIT_SSL_CAINFO "
    "http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY "
    "LOGREG_SPOOL_DIR LOGREG_WEBHOOK_URL LOGREG_UI_URL XDG_CACHE_HOME XDG_CONFIG_HOME".split()
)
RERUN_PREFIXES = ("LC_", "PYTHON", "CONDA", "PYENV", "MLFLOW_", "AWS_", "OPENBLAS_", "OMP_", "MKL_")


def for_rerun(extra: dict[str, str]) -> dict[str, str]:
    """The environment for recorded code the kit re-runs (`reproduce`): only what a
    training run needs (RERUN_NAMES, RERUN_PREFIXES), with `extra`."""
    kept = {
        name: value
        for name, value in for_child().items()
        if name in RERUN_NAMES or name.startswith(RERUN_PREFIXES)
    }
    return {**kept, **extra}


@contextmanager
def private_files() -> Iterator[None]:
    """Inside the block, what this process (and every child it starts) creates is its
    user's alone: files 0600, folders 0700 (umask 077). The kit's files hold private data
    or secrets: the spool (every artifact before upload), predictions, mlflow.db, a
    sweep's multirun.yaml, the server's log; under the usual umask (022) each was
    readable by every local user. The user's umask is back after the block."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def parent_run_id() -> str | None:
    """The parent run of the sweep this process is a configuration of, if any."""
    return os.environ.get(PARENT_VARIABLE) or None


def announce_parent(run_id: str) -> None:
    """From now on, configurations started by this process record under `run_id`."""
    os.environ[PARENT_VARIABLE] = run_id


def take_parent() -> str:
    """The sweep's parent run id, which configurations started later no longer see."""
    return os.environ.pop(PARENT_VARIABLE, "")


@contextmanager
def variables(values: dict[str, str]) -> Iterator[None]:
    """`values` set in the environment inside the block, each variable as it was after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def hydra_raises_errors() -> AbstractContextManager[None]:
    """Inside: Hydra's command line raises its errors (HYDRA_FULL_ERROR=1)."""
    return variables({HYDRA_FULL_ERROR: "1"})


def bounded_http(timeout_s: float) -> AbstractContextManager[None]:
    """Inside: MLflow's requests to a tracking server are tried once, for `timeout_s`."""
    return variables(
        {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": f"{timeout_s:g}"}
    )


S3_ENDPOINT_VARIABLE = "MLFLOW_S3_ENDPOINT_URL"


def use_s3_endpoint(configured: str) -> None:
    """`storage.endpoint`, when set, is the S3 endpoint of this process (MLflow's and the
    kit's S3 access both read it from MLFLOW_S3_ENDPOINT_URL)."""
    if configured:
        os.environ[S3_ENDPOINT_VARIABLE] = configured


def quiet_mlflow_downloads() -> None:
    """No progress bar per downloaded artifact, unless the user asked for them."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@contextmanager
def hydra_command_line(args: Sequence[str]) -> Iterator[None]:
    """Inside: `hydra.main` reads `args` as the command line (it takes no other)."""
    saved = sys.argv
    sys.argv = [saved[0], *args]
    try:
        yield
    finally:
        sys.argv = saved
