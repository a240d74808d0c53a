"""The kit's Hydra launcher for Ray, `hydra/launcher=ray` (conf/hydra/launcher/ray.yaml).

Hydra instantiates launchers only from the `hydra_plugins` package, and imports every
module there whenever it starts: this one imports nothing but Hydra, and the work (with
Ray) is done by `logistic_regression.ray_launcher.launch`, imported when a sweep launches.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class KitRayLauncher(Launcher):
    """The hydra-ray-launcher plugin's `RayLauncher`, for the kit's sweeps: its `ray.init`
    and `ray.remote` settings, the kit's launch (see logistic_regression/ray_launcher.py)."""

    def __init__(self, ray: DictConfig) -> None:
        self.ray_cfg = ray
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None
        self.config: DictConfig | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from logistic_regression.ray_launcher import launch

        return launch(self, job_overrides, initial_job_idx)
