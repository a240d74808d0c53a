"""`reproduce --env recorded`: the environment a run recorded, rebuilt with uv and cached.

What the run's environment.txt pins (its Python version and the packages the run
imports; every pinned package for a record that does not say which, packages.py) is
installed into a fresh virtual environment with uv, from the package registry; uv's own
download cache makes a rebuild of known packages quick. Environments are kept in a cache
folder, one per digest of what they were built from, so a second reproduction of the
same record starts at once: `$XDG_CACHE_HOME/logistic-regression-kit/environments`
(default `~/.cache/...`) or `--env-cache DIR`; deleting the folder clears it.

An environment is complete once its `built-from.json` is written. A build that fails or
is interrupted removes its folder; a folder a killed build left (no `built-from.json`)
is built again. One build at a time per cache (a lock on the cache folder).

The kit of the recorded commit is installed beside the environment (`install_kit`: uv's
`--target`, on the rerun's PYTHONPATH), not into it, so one cached environment serves
every commit recorded with the same packages. Nothing of the user's environment
(credentials included) is written into either.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from logistic_regression.errors import KitError
from logistic_regression.packages import Environment, normalised
from logistic_regression.uris import redact

BUILT_FROM = "built-from.json"


class CannotRebuild(KitError):
    """The recorded environment cannot be built here; the message says why."""


@dataclass(frozen=True)
class Rebuilt:
    """A complete environment in the cache."""

    root: Path
    reused: bool  # found in the cache, not built now

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def variables(self, kit: Path, path: str) -> dict[str, str]:
        """What a process must be given to run in this environment with the kit installed
        at `kit`: its interpreter first on PATH, and nothing else on PYTHONPATH."""
        return {
            "VIRTUAL_ENV": str(self.root),
            "PATH": os.pathsep.join([str(self.root / "bin"), path]),
            "PYTHONPATH": str(kit),
        }


def default_cache(variables: dict[str, str]) -> Path:
    """Where rebuilt environments are kept unless `--env-cache` says otherwise."""
    base = variables.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "logistic-regression-kit" / "environments"


def uv() -> str:
    """The uv binary the kit depends on (the `uv` package), whatever PATH holds."""
    from uv import find_uv_bin

    return find_uv_bin()


def find_python(version: str, run_id: str, chosen: bool) -> str:
    """The interpreter of `version` installed on this machine (uv downloads none)."""
    done = subprocess.run(
        [uv(), "python", "find", "--no-python-downloads", version],
        capture_output=True,
        text=True,
    )
    if done.returncode == 0 and done.stdout.strip():
        return done.stdout.strip().splitlines()[-1]
    if chosen:
        raise CannotRebuild(f"--python {version}: no such Python is installed on this machine")
    raise CannotRebuild(
        f"run {run_id} recorded Python {version}, which is not installed on this machine; "
        f"install it (uv python install {version}) or choose another with --python X.Y"
    )


def wanted(environment: Environment) -> list[str]:
    """The pins to install: what the run imports, and pip at its recorded version (MLflow
    records the pip version with a model)."""
    pins = environment.pins()
    if "pip" in environment.packages and not any(pin.startswith("pip==") for pin in pins):
        pins.append(f"pip=={environment.packages['pip']}")
    return sorted(pins)


def digest(python: str, pins: list[str]) -> str:
    return hashlib.sha256(json.dumps({"python": python, "pins": pins}).encode()).hexdigest()


def rebuild(environment: Environment, run_id: str, cache: Path, python: str = "") -> Rebuilt:
    """The recorded environment, from the cache or built now (refusals raise
    CannotRebuild, before anything is left in the cache)."""
    if not environment.packages:
        raise CannotRebuild(
            f"run {run_id} recorded no environment (no environment.txt), so there is "
            "nothing to rebuild; reproduce it in this environment with --env current"
        )
    version = python or environment.python
    if not version:
        raise CannotRebuild(
            f"run {run_id} recorded no Python version; choose one with --python X.Y"
        )
    interpreter = find_python(version, run_id, chosen=bool(python))
    pins = wanted(environment)
    root = cache / digest(version, pins)[:16]
    with _one_build(cache):
        if (root / BUILT_FROM).is_file():
            return Rebuilt(root, reused=True)
        shutil.rmtree(root, ignore_errors=True)  # what a killed build left
        print(
            f"Rebuilding run {run_id}'s environment (Python {version}, {len(pins)} "
            f"packages) in {root} ...",
            flush=True,
        )
        try:
            _build(root, interpreter, pins, run_id)
            (root / BUILT_FROM).write_text(json.dumps({"python": version, "pins": pins}) + "\n")
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
    return Rebuilt(root, reused=False)


@contextmanager
def _one_build(cache: Path) -> Iterator[None]:
    """An exclusive lock on the cache folder (nothing is left behind in it)."""
    cache.mkdir(parents=True, exist_ok=True)
    folder = os.open(cache, os.O_RDONLY)
    try:
        told = False
        while True:
            try:
                fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    print(f"Waiting for another build in {cache} ...", flush=True)
                    told = True
                time.sleep(0.2)
        yield
    finally:
        os.close(folder)


def _uv(args: list[str], what: str, pins: list[str]) -> None:
    done = subprocess.run([uv(), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise CannotRebuild(f"{what}: {failure(done.stderr, pins)}")


def _build(root: Path, interpreter: str, pins: list[str], run_id: str) -> None:
    what = f"run {run_id}'s environment cannot be rebuilt"
    _uv(["venv", "--quiet", "--no-python-downloads", "--python", interpreter, str(root)], what, [])
    if not pins:
        return
    requested = root / "requested.txt"
    requested.write_text("\n".join(pins) + "\n")
    python = str(root / "bin" / "python")
    _uv(["pip", "install", "--quiet", "--python", python, "-r", str(requested)], what, pins)


def install_kit(rebuilt: Rebuilt, project: Path, target: Path) -> None:
    """The kit of the checked-out commit installed into `target` (its own dependencies
    are the environment's)."""
    _uv(
        [
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--python",
            str(rebuilt.python),
            "--target",
            str(target),
            str(project),
        ],
        "the recorded commit's kit cannot be installed",
        [],
    )


def failure(stderr: str, pins: list[str]) -> str:
    """uv's reason in one line, naming the package it is about when one of `pins` is."""
    lines = []
    for line in stderr.splitlines():
        line = line.strip(" ×╰─▶│")
        for prefix in ("error:", "cause:"):
            line = line.removeprefix(prefix).strip()
        if line:
            lines.append(line)
    reason = next((line for line in lines if line.startswith("Because")), "")
    reason = reason or next((line for line in lines if not line.startswith("Using ")), "")
    named = [pin for pin in pins if _mentions(reason, pin.partition("==")[0])]
    prefix = f"package {named[0]} cannot be installed: " if named else ""
    reason = reason if len(reason) <= 300 else reason[:297] + "..."
    return redact(prefix + (reason or "uv failed"))


def _mentions(text: str, name: str) -> bool:
    words = re.sub(r"[-_.]+", "-", text.lower())
    return re.search(rf"(?<![\w-]){re.escape(normalised(name))}(?![\w-])", words) is not None
