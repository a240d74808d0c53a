"""Sweeps on a Ray cluster: `hydra/launcher=ray` runs each configuration as a Ray task.

    python -m logistic_regression.train -m hydra/launcher=ray \\
        hydra.launcher.ray.init.address=<head>:6379 model.C=0.1,1,10,100

`conf/hydra/launcher/ray.yaml` (which shadows the hydra-ray-launcher plugin's own `ray`
choice; `pip install -e ".[ray]"`) selects `hydra_plugins.logistic_regression_ray`'s
`KitRayLauncher` (Hydra takes launchers only from `hydra_plugins`), whose `launch` is
`launch` here: the plugin's `_core.launch` with what a sweep of the kit needs on top. The
`hydra.launcher.ray.init` and `.remote` keys are the plugin's (`ray.init(**init)`,
`ray.remote(**remote)`). See docs/ray.md.

What a configuration needs reaches its Ray task as an argument of the task
(`environment` of `run_job`), not through the environment of the processes: Ray worker
processes are started by a node's raylet and inherit *its* environment, never the
driver's, so the parent run's id (`environment.PARENT_VARIABLE`), the tracking store
(MLFLOW_TRACKING_URI, made absolute) and the tracking credentials (`forwarded_environment`:
MLFLOW_*, AWS_*, LOGREG_*, ...) would otherwise be missing there. The task sets them in
its worker's environment for the time of the job and restores it after. Why an argument
rather than the plugin's `init.runtime_env.env_vars`:

* the parent's id exists only once the sweep has started (`SweepCallback`), after Hydra
  composed the launcher's config;
* a `runtime_env` is job metadata: the plugin logs `init` whole ("Initializing ray with
  config: ..."), and Ray keeps it in its control store, shown by its dashboard and
  `ray list jobs`; secrets (MLFLOW_TRACKING_PASSWORD, AWS keys) do not belong there. A
  task's arguments are objects only the task reads. In the worker the credentials are
  environment variables again, so `uris.redact` hides them in every message as in any run.

A configuration that fails is a FAILED child as in any sweep (`sweep.run_child`, in the
task). A task that dies with its worker or its node (a node lost, a worker killed) never
reports: its child run, if it had opened one, is ended FAILED here with Ray's reason, or
a FAILED child is recorded when it had not; either way the sweep goes on and ends.
Tasks are not retried (`remote.max_retries: 0` in the launcher's config): a retry would
run the configuration again as a second child while the first stayed RUNNING.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from hydra.core import utils as hydra_utils
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    setup_globals,
)
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from logistic_regression import preflight
from logistic_regression.config import Config, public_config, typed_config
from logistic_regression.environment import (
    PARENT_VARIABLE,
    parent_run_id,
    variables,
)
from logistic_regression.errors import ConfigError, Interrupted, first_line
from logistic_regression.status import Status
from logistic_regression.tracking import runs, sweeps
from logistic_regression.uris import absolute_tracking_uri, redact

log = logging.getLogger(__name__)

# What a configuration's process needs from the driver's environment: the tracking store
# and its credentials (MLflow's, S3's and the other artifact stores'), the kit's settings.
FORWARDED_PREFIXES = ("MLFLOW_", "AWS_", "AZURE_", "GOOGLE_", "DATABRICKS_", "LOGREG_")


EXTRA = 'python -m pip install -e ".[ray]"'


# How long the sweep waits for a Ray cluster's head to answer before refusing it (Ray
# itself retries for minutes).
CONNECT_TIMEOUT_S = 10.0
ADDRESS_KEY = "hydra.launcher.ray.init.address"


def check_early(overrides: list[str]) -> None:
    """Before the sweep's parent run exists: `hydra/launcher=ray` without the `ray` extra,
    or with a cluster address where nothing answers, is refused in one line."""
    try:
        import hydra_plugins.hydra_ray_launcher.ray_launcher  # noqa: F401  (the schema)
        import ray  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"hydra/launcher=ray needs Ray and Hydra's Ray launcher ({first_line(exc)}): {EXTRA}"
        ) from exc
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+") == ADDRESS_KEY:
            check_reachable(value)


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """A `host:port` (or `ray://host:port`) cluster address whose port does not accept a
    connection within `timeout_s` is a ConfigError; `auto`, `local` and empty are Ray's."""
    plain = address.strip().strip("'\"").removeprefix("ray://")
    host, _, port = plain.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return
    except OSError as exc:
        raise ConfigError(
            f"{ADDRESS_KEY}={address}: no Ray cluster answers there ({exc.strerror or exc}); "
            "start it (ray start --head) or fix the address"
        ) from exc


def forwarded_environment(tracking_uri: str) -> dict[str, str]:
    """The variables a configuration's task sets in its worker: every FORWARDED_PREFIXES
    variable of this process, MLFLOW_TRACKING_URI as an absolute URI, and the parent's id."""
    environment = {
        name: value for name, value in os.environ.items() if name.startswith(FORWARDED_PREFIXES)
    }
    environment["MLFLOW_TRACKING_URI"] = tracking_uri
    parent = parent_run_id()
    if parent:
        environment[PARENT_VARIABLE] = parent
    return environment


@contextlib.contextmanager
def environment_of(values: Mapping[str, str], directory: str) -> Iterator[None]:
    """These variables set, and the driver's working directory when this node has it
    (same machine, shared file system: relative paths of the config mean the same), for
    the time of one job; the worker's own environment afterwards."""
    here = os.getcwd()
    with variables(dict(values)):
        with contextlib.suppress(OSError):
            os.chdir(directory)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.chdir(here)


def run_job(environment: Mapping[str, str], directory: str, *args: Any, **kwargs: Any) -> JobReturn:
    """The Ray task: one configuration run by Hydra's `run_job` in its worker, with the
    driver's environment and Hydra's state (as the Ray launcher plugin's own task does)."""
    with environment_of(environment, directory):
        return _run_job(*args, **kwargs)


def _run_job(
    hydra_context: HydraContext,
    sweep_config: DictConfig,
    task_function: TaskFunction,
    singleton_state: dict[Any, Any],
) -> JobReturn:
    setup_globals()
    Singleton.set_state(singleton_state)
    HydraConfig.instance().set_config(sweep_config)
    return hydra_utils.run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


def start_ray(init: DictConfig) -> None:
    """Join (or start) the Ray cluster `hydra.launcher.ray.init` names, once per process."""
    import ray

    if not ray.is_initialized():
        ray.init(**cast(dict[str, Any], OmegaConf.to_container(init, resolve=True) or {}))


def launch(
    launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> Sequence[JobReturn]:
    """The plugin's `_core.launch` (for `hydra_plugins.logistic_regression_ray`'s
    launcher), with each job's environment passed to its task, and a task lost with its
    worker or node recorded as a FAILED child instead of ending the sweep with Ray's
    exception."""
    import ray

    setup_globals()
    config, context, task_function = launcher.config, launcher.hydra_context, launcher.task_function
    assert config is not None and context is not None and task_function is not None
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    if not launcher.ray_cfg.init.get("address"):  # a local Ray for this sweep alone
        launcher.ray_cfg.init.setdefault("object_store_memory", 78643200)
    try:
        start_ray(launcher.ray_cfg.init)
    except (ConnectionError, TimeoutError, ValueError) as exc:  # no cluster there, bad init
        where = launcher.ray_cfg.init.get("address")
        raise ConfigError(
            f"the Ray cluster at hydra.launcher.ray.init.address={where} could not be "
            f"joined: {first_line(exc)}"
        ) from exc

    tracking = absolute_tracking_uri(kit_config(config).tracking.uri)  # resolved: to_object
    environment = forwarded_environment(tracking)
    remote = cast(dict[str, Any], OmegaConf.to_container(launcher.ray_cfg.remote, resolve=True))
    task = ray.remote(**remote)(run_job) if remote else ray.remote(run_job)
    submitted = []
    for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
        log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
        job_config = context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(job_config):
            job_config.hydra.job.id = f"job_id_for_{idx}"
            job_config.hydra.job.num = idx
        reference = task.remote(
            environment,
            os.getcwd(),
            hydra_context=context,
            sweep_config=job_config,
            task_function=task_function,
            singleton_state=Singleton.get_state(),
        )
        submitted.append((reference, job_config, list(overrides)))

    results: list[JobReturn] = []
    lost: list[tuple[DictConfig, str]] = []
    try:
        for reference, job_config, overrides in submitted:
            try:
                results.append(ray.get(reference))
            except ray.exceptions.RayError as exc:  # the task's worker or node died
                lost.append((job_config, redact(lost_reason(exc))))
                results.append(lost_job(job_config, overrides))
    except (Interrupted, SystemError) as exc:  # Ctrl-C, SIGTERM: the tasks stop too
        # Raised inside Ray's extension, the signal's Interrupted comes as the cause of a
        # SystemError ("returned a result with an exception set").
        stop = exc if isinstance(exc, Interrupted) else exc.__cause__
        if not isinstance(stop, Interrupted):
            raise
        # Leaving the cluster ends the job: Ray kills its workers, so the configurations
        # running stop there. (Not `ray.cancel(force=True)`: racing a task that just
        # completed, it aborts the driver with a failed check inside Ray 2.60.)
        with contextlib.suppress(Exception):
            ray.shutdown()
        parent = parent_run_id()
        if parent:
            with contextlib.suppress(Exception), runs.bounded_store():
                for child in sweeps.child_runs(parent):
                    if child.info.status == Status.RUNNING:
                        runs.fail_run(child.info.run_id, str(stop), Status.KILLED)
        raise stop from None
    parent = parent_run_id()
    if lost and parent:
        record_lost(parent, lost)
    return results


def lost_reason(exc: Exception) -> str:
    """Why a task never reported, in one line: Ray's error, or what the job raised."""
    import ray

    if isinstance(exc, ray.exceptions.RayTaskError):  # the job itself raised (a bug)
        cause = exc.cause
        return f"the configuration's Ray task failed: {type(cause).__name__}: {first_line(cause)}"
    return f"its Ray task was lost (its worker or node died): {type(exc).__name__}: " + (
        first_line(exc)
    )


def lost_job(job_config: DictConfig, overrides: list[str]) -> JobReturn:
    """What Hydra gets for a lost task: a finished job whose value is NaN, as
    `sweep.run_child` returns for a FAILED child (a FAILED job would end the sweep)."""
    done = JobReturn(overrides=overrides, cfg=job_config, status=JobStatus.COMPLETED)
    done.return_value = math.nan
    return done


def kit_config(job_config: DictConfig) -> Config:
    return typed_config(job_config)


def record_lost(parent: str, lost: list[tuple[DictConfig, str]]) -> None:
    """Every child still RUNNING once every task is over was left by a lost task: it ends
    FAILED with the reason of the lost task of its name (the first reason when no name
    matches). A lost task without such a child gets a FAILED child of its own."""
    with runs.bounded_store():
        running = [c for c in sweeps.child_runs(parent) if c.info.status == Status.RUNNING]
        reasons: dict[str, str] = {}
        unmatched: list[tuple[Config, str]] = []
        for job_config, reason in lost:
            config = kit_config(job_config)
            name = preflight.run_name(config)
            if any(child.info.run_name == name for child in running):
                reasons.setdefault(name, reason)
            else:
                unmatched.append((config, reason))
        for child in running:
            reason = reasons.get(child.info.run_name) or lost[0][1]
            runs.fail_run(child.info.run_id, reason)
            print(f"{child.info.run_name}: FAILED: {reason}", file=sys.stderr)
        for config, reason in unmatched:
            name = preflight.run_name(config)
            sweeps.record_failed_child(
                parent, name, reason, runs.config_params(public_config(config))
            )
            print(f"{name}: FAILED: {reason}", file=sys.stderr)
