"""Which repositories `reproduce` may clone and run: the code a run's tags name is code
someone with EDIT on its experiment chose, and reproducing runs it with your login.

Trusted without asking: the repository of this checkout (the folder you work in, and
the one the kit runs from) and its remotes. Anything else only when you name it
(`reproduce --trust URL`, `mlflow run . -e reproduce -P trust=URL`). Locations compare
as the same repository whatever the spelling: `https://host/team/kit.git`,
`ssh://git@host/team/kit`, `git@host:team/kit.git` are one, and a local path is its
resolved folder.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from logistic_regression.config import PROJECT_DIR
from logistic_regression.errors import KitError
from logistic_regression.uris import redact, without_redacted_userinfo

# `user@host:path` (git's scp-like syntax), not a Windows drive or a URL.
_SCP_LIKE = re.compile(r"^(?:[^@/:]+@)?(?P<host>[^@/:]{2,}):(?!//)(?P<path>.+)$")


class UntrustedRepository(KitError):
    """The run's code is in a repository the user did not choose to trust."""


def canonical(location: str) -> str:
    """One spelling per repository: `host[:port]/path` (no user, scheme or `.git`), or
    `file:<resolved folder>` for a local one."""
    text = without_redacted_userinfo(location.strip())
    scp = _SCP_LIKE.match(text) if "://" not in text else None
    if scp and not Path(text).exists():
        text = f"ssh://{scp.group('host')}/{scp.group('path')}"
    parts = urlsplit(text)
    if parts.scheme in ("", "file"):
        folder = unquote(parts.path) if parts.scheme else text
        return "file:" + str(Path(folder).expanduser().resolve())
    host = (parts.hostname or "").lower()
    port = f":{parts.port}" if parts.port else ""
    path = unquote(parts.path).rstrip("/").removesuffix(".git").rstrip("/")
    return f"{host}{port}{path}"


def _git(folder: Path, *args: str) -> list[str]:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return done.stdout.split() if done.returncode == 0 else []


def own_repositories(folders: Iterable[Path]) -> set[str]:
    """The repositories of these folders' checkouts and their remotes, canonical."""
    found: set[str] = set()
    for folder in folders:
        top = _git(folder, "rev-parse", "--show-toplevel")
        if not top:
            continue
        found.add(canonical(top[0]))
        remotes = _git(Path(top[0]), "remote")
        for remote in remotes:
            for url in _git(Path(top[0]), "remote", "get-url", "--all", remote):
                found.add(canonical(url))
    return found


def check(repository: str, run_id: str, listed: Iterable[str]) -> None:
    """Refuse, in one line, to clone `repository` unless it is trusted."""
    trusted = own_repositories([Path.cwd(), PROJECT_DIR]) | {canonical(u) for u in listed}
    if canonical(repository) in trusted:
        return
    shown = redact(repository)
    raise UntrustedRepository(
        f"run {run_id}'s code is in {shown}, which is not this checkout's repository or "
        "one of its remotes: reproducing it would run that code with your credentials; "
        f"if you trust it, pass --trust {shown} (mlflow run: -P trust={shown})"
    )
