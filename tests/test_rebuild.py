"""`reproduce --env recorded`'s environments (rebuild.py): refusals in one line, the
cache by digest, and nothing half-built left behind. Builds here are real uv builds of
environments small enough to need no download."""

from __future__ import annotations

import platform

import pytest

from logistic_regression import rebuild
from logistic_regression.packages import KIT, Environment
from logistic_regression.rebuild import BUILT_FROM, CannotRebuild

HERE = platform.python_version()
# Pins nothing (the kit itself is never pinned): an environment built from the
# interpreter alone, without the package registry.
BARE = Environment(HERE, {KIT: "0.1.0"}, frozenset({KIT}))


def test_a_run_that_recorded_no_environment_is_refused(tmp_path):
    with pytest.raises(CannotRebuild, match="run r1 recorded no environment .*--env current"):
        rebuild.rebuild(Environment(), "r1", tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_a_python_not_installed_here_is_named_with_the_flag_to_choose_another(tmp_path):
    recorded = Environment("3.9.1", {"mlflow": "3.17.2"}, frozenset({"mlflow"}))
    with pytest.raises(CannotRebuild) as refused:
        rebuild.rebuild(recorded, "r1", tmp_path / "cache")
    message = str(refused.value)
    assert "recorded Python 3.9.1, which is not installed" in message
    assert "--python X.Y" in message and "\n" not in message
    with pytest.raises(CannotRebuild, match=r"--python 3\.9\.1: no such Python"):
        rebuild.rebuild(BARE, "r1", tmp_path / "cache", python="3.9.1")


def test_a_package_that_cannot_be_installed_is_named_and_nothing_is_left(tmp_path, monkeypatch):
    monkeypatch.setenv("UV_OFFLINE", "1")  # the registry is not asked: only uv's cache
    recorded = Environment(
        HERE, {"no-such-package-kit-test": "0.0.1"}, frozenset({"no-such-package-kit-test"})
    )
    cache = tmp_path / "cache"
    with pytest.raises(CannotRebuild) as refused:
        rebuild.rebuild(recorded, "r1", cache)
    message = str(refused.value)
    assert message.startswith("run r1's environment cannot be rebuilt: package ")
    assert "no-such-package-kit-test==0.0.1 cannot be installed" in message
    assert "\n" not in message
    assert list(cache.iterdir()) == []


def test_a_built_environment_is_reused_by_digest_and_a_half_built_one_is_built_again(tmp_path):
    cache = tmp_path / "cache"
    first = rebuild.rebuild(BARE, "r1", cache)
    assert not first.reused and (first.root / BUILT_FROM).is_file()
    assert first.python.is_file()
    again = rebuild.rebuild(BARE, "r2", cache)
    assert again.reused and again.root == first.root
    other = Environment(HERE, {"pip": "1.0"}, frozenset())
    assert rebuild.digest(HERE, rebuild.wanted(other)) != rebuild.digest(HERE, [])

    (first.root / BUILT_FROM).unlink()  # as a build killed before it finished leaves it
    (first.root / "left-over").write_text("x")
    rebuilt = rebuild.rebuild(BARE, "r1", cache)
    assert not rebuilt.reused and not (rebuilt.root / "left-over").exists()


def test_uvs_reason_is_one_line_naming_the_package():
    stderr = (
        "Using Python 3.11.7 environment at: e2\n"
        "error: No solution found when resolving dependencies\n"
        "  cause: Because there is no version of scikit-learn==0.0.1 and you require "
        "scikit-learn==0.0.1, we can conclude that your requirements are unsatisfiable.\n"
    )
    line = rebuild.failure(stderr, ["numpy==2.4.6", "scikit-learn==0.0.1"])
    assert line.startswith("package scikit-learn==0.0.1 cannot be installed: Because there")
    assert rebuild.failure("error: boom\n", ["six==1"]) == "boom"
    secret = "error: https://user:hunter2secret@index.example/simple unreachable\n"
    assert "hunter2secret" not in rebuild.failure(secret, [])


def test_the_rerun_runs_in_the_environment_with_only_the_kit_on_its_path(tmp_path):
    built = rebuild.Rebuilt(tmp_path / "env", reused=False)
    variables = built.variables(tmp_path / "kit", "/usr/bin")
    assert variables == {
        "VIRTUAL_ENV": str(tmp_path / "env"),
        "PATH": f"{tmp_path / 'env' / 'bin'}:/usr/bin",
        "PYTHONPATH": str(tmp_path / "kit"),
    }
