"""Provenance from real git repositories made by the tests."""

import getpass
import subprocess

from conftest import git

import logistic_regression
from logistic_regression import provenance


def make_repo(path):
    path.mkdir()
    git(path, "init", "-q", "-b", "trunk")
    (path / "train.py").write_text("print('v1')\n")
    (path / ".gitignore").write_text("mlruns/\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "first")
    return path


def test_clean_tree(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "mlruns").mkdir()
    (repo / "mlruns" / "ignored.txt").write_text("ignored files do not make a tree dirty")
    state = provenance.git_state(repo)
    assert state.commit == git(repo, "rev-parse", "HEAD")
    assert state.branch == "trunk"
    assert state.dirty is False and state.patch == ""
    assert state.repo_url is None
    tags = provenance.tags(repo, state, "a note")
    assert tags == {
        provenance.SOURCE_NAME: f"file://{repo}",
        provenance.NOTE: "a note",
        provenance.GIT_COMMIT: state.commit,
        provenance.GIT_DIRTY: "false",
        provenance.GIT_BRANCH: "trunk",
        provenance.SOURCE_TYPE: "LOCAL",
        provenance.USER: getpass.getuser(),
        provenance.KIT_VERSION: logistic_regression.__version__,
    }


def test_remote_and_subdirectory(tmp_path):
    repo = make_repo(tmp_path / "repo")
    git(repo, "remote", "add", "origin", "git://127.0.0.1:9/kit.git")
    (repo / "sub").mkdir()
    state = provenance.git_state(repo / "sub")
    assert state.repo_url == "git://127.0.0.1:9/kit.git"
    assert provenance.source_name(repo / "sub", state) == f"file://{repo}#sub"


def test_dirty_tree_patch_recreates_the_changes(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "train.py").write_text("print('v2, uncommitted')\n")
    (repo / "new_module.py").write_text("VALUE = 42\n")
    state = provenance.git_state(repo)
    assert state.dirty is True
    assert "new_module.py" in state.patch and "v2, uncommitted" in state.patch

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    (tmp_path / "change.patch").write_text(state.patch)
    git(clone, "apply", str(tmp_path / "change.patch"))
    assert (clone / "train.py").read_text() == "print('v2, uncommitted')\n"
    assert (clone / "new_module.py").read_text() == "VALUE = 42\n"


def test_detached_head_has_no_branch(tmp_path):
    repo = make_repo(tmp_path / "repo")
    git(repo, "checkout", "-q", "--detach")
    assert provenance.git_state(repo).branch is None


def test_outside_git(tmp_path):
    assert provenance.git_state(tmp_path) is None
    assert provenance.tags(tmp_path, None, "") == {
        provenance.SOURCE_NAME: str(tmp_path),
        provenance.NOTE: "",
        provenance.SOURCE_TYPE: "LOCAL",
        provenance.USER: getpass.getuser(),
        provenance.KIT_VERSION: logistic_regression.__version__,
    }


def test_the_recorded_patch_hides_known_secrets_and_leaves_binary_files_whole(monkeypatch):
    from logistic_regression.provenance import redacted_patch

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMIK7MDENGbPxRfiCYSECRET")
    text = (
        "diff --git a/deploy.sh b/deploy.sh\nnew file mode 100644\n--- /dev/null\n"
        "+++ b/deploy.sh\n@@ -0,0 +1,2 @@\n"
        "+export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCYSECRET\n"
        "+aws s3 cp s3://AKID:hunter2hunter2@bucket/x .\n"
    )
    binary = (
        "diff --git a/blob.bin b/blob.bin\nnew file mode 100644\nindex 0000000..1111111\n"
        "GIT binary patch\nliteral 12\nzcmZ?wbhEHbRA6A?key=;Tc0wO\n\nliteral 0\nHcmV?d00001\n\n"
    )
    shown, hidden = redacted_patch(text + binary)
    assert hidden == 2
    assert "wJalrXUtnFEMIK7MDENGbPxRfiCYSECRET" not in shown and "hunter2" not in shown
    assert "+export AWS_SECRET_ACCESS_KEY=***\n" in shown and "s3://***@bucket/x" in shown
    assert shown.endswith(binary), "a binary file's lines are left whole"
    assert redacted_patch(binary) == (binary, 0)


def test_large_or_binary_untracked_files_stay_out_of_the_patch_and_are_named(tmp_path):
    """A model file or a tool's cache left in the checkout made every later run carry a
    patch of megabytes (390 KB of model.skops, 3-20 MB of .mypy_cache)."""
    repo = make_repo(tmp_path / "repo")
    (repo / "notes.py").write_text("print('mine')\n")
    (repo / "big.csv").write_text("x\n" * (provenance.UNTRACKED_LIMIT // 2 + 1))
    (repo / "model.skops").write_bytes(b"PK\x03\x04\x00\x00binary")
    state = provenance.git_state(repo)
    assert state.dirty
    assert sorted(state.left_out) == ["big.csv", "model.skops"]
    assert "notes.py" in state.patch and "print('mine')" in state.patch
    assert "big.csv" not in state.patch and "model.skops" not in state.patch
    assert len(state.patch) < 2000
