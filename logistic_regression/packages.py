"""The environment a run records (`environment.txt`) and which of it can change a result.

Every installed distribution is pinned, so the file says exactly what was there. The file
also says which of them the run imports: the kit's
runtime dependencies (its `pyproject.toml`, else its installed metadata) and everything
they pull in. Comparing two environments speaks of those (and the Python version);
tools the run never imports (pytest, ruff, ...) only differ in a folded note. A file
recorded before the section existed is read as "runtime unknown", and the packages this
environment's kit imports stand in for it.
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

# The kit itself: its code is pinned by the recorded commit, not by a version.
KIT = "logistic-regression-kit"
RUNTIME_HEADER = "# runtime: the kit's dependencies and what they pull in"
OTHERS_HEADER = "# other packages in this environment (the run does not import them)"


def normalised(name: str) -> str:
    """A distribution name as package indexes compare them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Environment:
    """A Python version and its packages by normalised name. `runtime`: the names the
    run imports; None when the record did not say (recorded by an earlier kit)."""

    python: str = ""
    packages: dict[str, str] = field(default_factory=dict)
    runtime: frozenset[str] | None = None

    def pins(self) -> list[str]:
        """`name==version` for what the run imports (every package when unknown),
        without the kit itself."""
        names = self.packages if self.runtime is None else self.runtime
        return [
            f"{name}=={self.packages[name]}"
            for name in sorted(names)
            if name in self.packages and name != KIT
        ]


def installed() -> dict[str, str]:
    """Every distribution importable by this interpreter, by normalised name."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = normalised(dist.metadata["Name"] or "")
        if name and name not in found:
            found[name] = dist.version
    return dict(sorted(found.items()))


def kit_requirements(project_dir: Path) -> list[str]:
    """The kit's runtime requirements: the `pyproject.toml` of the code being run (a
    checkout `mlflow run` made may be another commit than the installed kit), else the
    installed kit's metadata."""
    pyproject = project_dir / "pyproject.toml"
    if pyproject.is_file():
        try:
            declared = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
            return [str(item) for item in declared]
        except (tomllib.TOMLDecodeError, KeyError, TypeError, OSError):
            pass
    try:
        return list(importlib.metadata.distribution(KIT).requires or [])
    except importlib.metadata.PackageNotFoundError:
        return []


def _applies(requirement: Requirement, extras: Iterable[str]) -> bool:
    marker = requirement.marker
    return marker is None or any(marker.evaluate({"extra": extra}) for extra in ("", *extras))


def runtime_closure(requirements: Iterable[str]) -> frozenset[str]:
    """The installed distributions `requirements` pull in, transitively (with the
    extras each asks for), by normalised name."""
    found: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    queue: list[tuple[str, tuple[str, ...]]] = [(text, ()) for text in requirements]
    while queue:
        text, parent_extras = queue.pop()
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if not _applies(requirement, parent_extras):
            continue
        key = (normalised(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found.add(key[0])
        queue.extend((sub, tuple(requirement.extras)) for sub in dist.requires or [])
    return frozenset(found)


def current(project_dir: Path) -> Environment:
    """This interpreter's environment, with what the kit at `project_dir` imports."""
    return Environment(
        python=platform.python_version(),
        packages=installed(),
        runtime=runtime_closure(kit_requirements(project_dir)),
    )


def lock(environment: Environment) -> str:
    """environment.txt: a pip requirements file (every package pinned) with a header,
    the packages the run imports first, then the others."""
    lines = [
        f"# python {environment.python} ({platform.python_implementation()})",
        f"# platform {platform.system()}-{platform.machine()}",
    ]
    runtime = environment.runtime or frozenset()
    sections = (
        (RUNTIME_HEADER, [name for name in environment.packages if name in runtime]),
        (OTHERS_HEADER, [name for name in environment.packages if name not in runtime]),
    )
    for header, names in sections:
        if names:
            lines.append(header)
            lines.extend(f"{name}=={environment.packages[name]}" for name in names)
    return "\n".join(lines) + "\n"


def parse(text: str) -> Environment:
    """An environment.txt read back (any kit's: one without sections has runtime None)."""
    python = ""
    packages: dict[str, str] = {}
    runtime: set[str] | None = None
    in_runtime = False
    for line in text.splitlines():
        if line.startswith("# python "):
            python = line.split()[2]
        elif line == RUNTIME_HEADER:
            runtime, in_runtime = set(), True
        elif line == OTHERS_HEADER:
            runtime, in_runtime = runtime if runtime is not None else set(), False
        elif "==" in line and not line.startswith("#"):
            name, _, version = line.partition("==")
            packages[normalised(name.strip())] = version.strip()
            if in_runtime and runtime is not None:
                runtime.add(normalised(name.strip()))
    return Environment(python, packages, None if runtime is None else frozenset(runtime))


Difference = tuple[str, str | None, str | None]


@dataclass(frozen=True)
class Differences:
    """What differs between two environments: among what the run imports (and Python),
    then the names of the other packages that differ."""

    relevant: list[Difference]
    others: list[str]


def differences(before: Environment, after: Environment, here: frozenset[str]) -> Differences:
    """`before` against `after`. What the run imports is what either record says it
    imports; a record that does not say counts as `here` (this kit's closure)."""
    imported = (before.runtime if before.runtime is not None else here) | (
        after.runtime if after.runtime is not None else here
    )
    relevant: list[Difference] = []
    if before.python != after.python:
        relevant.append(("python", before.python or None, after.python or None))
    others = []
    for name in sorted((set(before.packages) | set(after.packages)) - {KIT}):
        old, new = before.packages.get(name), after.packages.get(name)
        if old != new:
            if name in imported:
                relevant.append((name, old, new))
            else:
                others.append(name)
    return Differences(relevant, others)
