"""What it takes to re-run a run: the code's git state, its source name, the environment.

Reads git with the `git` command line (the same tool the user has), never changes the
working tree. `source_name` gives the value `mlflow run` records for a local project
(`file://<repo root>[#<subdirectory>]`), so a run started with `python -m` carries the
same tags as one started by `mlflow run`.
"""

from __future__ import annotations

import getpass
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from logistic_regression import __version__
from logistic_regression.uris import MARK, redact

# MLflow's reserved tag names, as documented for MLflow Projects.
SOURCE_NAME = "mlflow.source.name"
GIT_COMMIT = "mlflow.source.git.commit"
GIT_BRANCH = "mlflow.source.git.branch"
GIT_REPO_URL = "mlflow.source.git.repoURL"
GIT_DIRTY = "mlflow.source.git.dirty"
NOTE = "mlflow.note.content"
USER = "mlflow.user"
SOURCE_TYPE = "mlflow.source.type"
# What MLflow's UI shows in its "Created by" and "Source" columns.
UI_TAGS = (USER, SOURCE_NAME, SOURCE_TYPE, GIT_COMMIT, GIT_BRANCH, GIT_REPO_URL, NOTE)
# A run made by `reproduce` names the run it reproduces (earlier kits: `reproduces`).
REPRODUCTION_OF = "kit.reproduction_of"
LEGACY_REPRODUCTION_OF = "reproduces"


def reproduction_of(tags: dict[str, str]) -> str | None:
    """The id of the run a run reproduces, from its tags; None for any other run."""
    return tags.get(REPRODUCTION_OF) or tags.get(LEGACY_REPRODUCTION_OF) or None


@dataclass(frozen=True)
class GitState:
    root: Path
    commit: str
    branch: str | None
    repo_url: str | None
    dirty: bool
    patch: str  # uncommitted changes (tracked and untracked files) as a `git apply` patch
    left_out: tuple[str, ...] = ()  # untracked files too large or binary for the patch


def _git(cwd: Path, *args: str, ok_codes: tuple[int, ...] = (0,)) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:  # no git on PATH: no provenance from git, said in tags
        return None
    if done.returncode not in ok_codes:
        return None
    return done.stdout


def git_state(path: Path) -> GitState | None:
    """The git state of the repository holding `path`, or None outside any repository."""
    top = _git(path, "rev-parse", "--show-toplevel")
    commit = _git(path, "rev-parse", "HEAD")
    if top is None or commit is None:
        return None
    root = Path(top.strip())
    branch = (_git(root, "rev-parse", "--abbrev-ref", "HEAD") or "").strip()
    remote = _git(root, "remote", "get-url", "origin")
    status = _git(root, "status", "--porcelain", "--untracked-files=normal") or ""
    dirty = bool(status.strip())
    patch, left_out = uncommitted_patch(root) if dirty else ("", ())
    return GitState(
        root=root,
        commit=commit.strip(),
        branch=branch if branch and branch != "HEAD" else None,
        repo_url=remote.strip() if remote else None,
        dirty=dirty,
        patch=patch,
        left_out=left_out,
    )


# An untracked file larger than this, or binary, stays out of uncommitted.patch: a model
# file or a tool's cache left in the checkout made every later run carry megabytes of
# patch. Tracked files are always in it (git already holds their history).
UNTRACKED_LIMIT = 256 * 1024
LEFT_OUT = "kit.patch_left_out"


def uncommitted_patch(root: Path) -> tuple[str, tuple[str, ...]]:
    """Tracked changes against HEAD plus untracked text files, as one patch for `git
    apply`, and the untracked files left out of it (too large or binary)."""
    parts = [_git(root, "diff", "HEAD", "--binary") or ""]
    untracked = (_git(root, "ls-files", "--others", "--exclude-standard", "-z") or "").split("\0")
    left_out: list[str] = []
    for name in filter(None, untracked):
        if not _small_text(root / name):
            left_out.append(name)
            continue
        diff = _git(root, "diff", "--no-index", "--binary", "--", "/dev/null", name, ok_codes=(1,))
        parts.append(diff or "")
    return "".join(parts), tuple(left_out)


def _small_text(path: Path) -> bool:
    """At most UNTRACKED_LIMIT bytes with no NUL byte (git's own test for binary)."""
    try:
        if path.stat().st_size > UNTRACKED_LIMIT:
            return False
        with path.open("rb") as handle:
            return b"\0" not in handle.read(8000)
    except OSError:
        return False


PATCH_REDACTED = "kit.patch_redacted"
# The kit's version, on every run it opens or takes over from `mlflow run`, set with the
# first tags: a RUNNING run without it was never handed to the kit (`tracking.unlaunched`).
KIT_VERSION = "kit.version"


def redacted_patch(patch: str) -> tuple[str, int]:
    """The patch with every known secret hidden (`uris.redact`: credential variables'
    values, the webhook URL, user-info and secret parameters of URIs), and how many
    were. Text files only: a binary file's base85 lines are left whole, since hiding a
    piece of one would corrupt it. What was hidden stays `***` when `reproduce` applies
    the patch; where that matters, the metrics say so."""
    blocks = re.split(r"(?m)^(?=diff --git )", patch)
    shown = [block if "\nGIT binary patch\n" in block else redact(block) for block in blocks]
    text = "".join(shown)
    return text, text.count(MARK) - patch.count(MARK)


def source_name(project_dir: Path, state: GitState | None) -> str:
    """`file://<repo root>` plus `#<subdirectory>` when the project sits below the root."""
    project_dir = project_dir.resolve()
    if state is None:
        return str(project_dir)
    relative = project_dir.relative_to(state.root.resolve()).as_posix()
    base = f"file://{state.root}"
    return base if relative == "." else f"{base}#{relative}"


def tags(project_dir: Path, state: GitState | None, note: str) -> dict[str, str]:
    """The provenance tags every run carries, redacted (a remote URL with a token in it
    is recorded as `https://***@host/...`; `reproduce` then clones without it)."""
    values = {
        SOURCE_NAME: source_name(project_dir, state),
        SOURCE_TYPE: "LOCAL",
        USER: user_name(),
        NOTE: note,
        KIT_VERSION: __version__,
    }
    if state is not None:
        values[GIT_COMMIT] = state.commit
        values[GIT_DIRTY] = str(state.dirty).lower()
        if state.branch:
            values[GIT_BRANCH] = state.branch
        if state.repo_url:
            values[GIT_REPO_URL] = state.repo_url
    return {name: redact(value) for name, value in values.items()}


def user_name() -> str:
    """Who ran it, as MLflow records it for its own runs (runs the kit opens with the
    client would otherwise show no "Created by")."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return "unknown"


# -- the files two recorded commits differ in (`compare`) -------------------------------

# A clone that takes longer (a large repository, a slow network) is given up on.
CLONE_TIMEOUT_S = 120
# git never runs a helper program of the repository's own for a diff.
_PLAIN_DIFF = ("diff", "--no-ext-diff", "--no-textconv", "--no-renames", "--no-color")


@dataclass(frozen=True)
class ChangedFiles:
    where: str  # the repository the diff was read in, redacted
    files: tuple[tuple[str, str], ...]  # (git's status letter: A M D T, path)
    summary: str  # `git diff --shortstat`: "3 files changed, 10 insertions(+), ..."


def _holds(repository: Path, commits: Iterable[str]) -> bool:
    return all(_git(repository, "cat-file", "-e", f"{c}^{{commit}}") is not None for c in commits)


def _diff(repository: Path, old: str, new: str, where: str) -> ChangedFiles | None:
    listed = _git(repository, *_PLAIN_DIFF, "--name-status", "-z", old, new)
    summary = _git(repository, *_PLAIN_DIFF, "--shortstat", old, new)
    if listed is None or summary is None:
        return None
    parts = listed.split("\0")
    files = tuple((parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2))
    return ChangedFiles(redact(where), files, summary.strip())


def _bare_clone(source: str, into: Path) -> Path | None:
    """A bare clone of `source` (read only: no checkout, no hook of its own, nothing of
    its code run), or None when it cannot be cloned within CLONE_TIMEOUT_S. Without a
    terminal and with git's prompts off: a repository asking for a login is skipped."""
    command = ["git", "-c", "protocol.ext.allow=never", "clone", "--bare", "--quiet"]
    try:
        done = subprocess.run(
            [*command, "--", source, str(into)],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=CLONE_TIMEOUT_S,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
            start_new_session=True,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return into if done.returncode == 0 else None


def changed_files(
    old: str, new: str, checkouts: Iterable[Path], sources: Iterable[str]
) -> ChangedFiles | None:
    """The files that differ between commits `old` and `new`, read in the first
    repository that holds both: the repository of one of `checkouts` (this checkout's
    own), else a bare clone of one of `sources` (the runs' recorded repositories: a URL
    or a local folder, cloned rather than read in place, so that no setting of theirs
    runs a program). None when none holds both, or either is not a commit's hex name
    (a tag anyone may edit is never handed to git as an option)."""
    if not all(re.fullmatch(r"[0-9a-f]{4,64}", commit) for commit in (old, new)):
        return None
    tops: list[Path] = []
    for folder in checkouts:
        found = _git(folder, "rev-parse", "--show-toplevel")
        if found and Path(found.strip()).resolve() not in tops:
            tops.append(Path(found.strip()).resolve())
    for top in tops:
        if _holds(top, (old, new)):
            return _diff(top, old, new, str(top))
    remaining = [s for s in dict.fromkeys(sources) if s and Path(s).resolve() not in tops]
    if not remaining:
        return None
    with tempfile.TemporaryDirectory(prefix="logreg-compare-") as scratch:
        for index, source in enumerate(remaining):
            clone = _bare_clone(source, Path(scratch) / str(index))
            if clone is not None and _holds(clone, (old, new)):
                return _diff(clone, old, new, source)
    return None
