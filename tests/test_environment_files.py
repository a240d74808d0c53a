"""conda.yaml, python_env.yaml and pyproject.toml must pin the same packages."""

import tomllib

import yaml
from conftest import PROJECT


def pins_from_pyproject() -> list[str]:
    with open(PROJECT / "pyproject.toml", "rb") as handle:
        return sorted(tomllib.load(handle)["project"]["dependencies"])


def pins_from_python_env() -> list[str]:
    return sorted(yaml.safe_load((PROJECT / "python_env.yaml").read_text())["dependencies"])


def pins_from_conda() -> list[str]:
    dependencies = yaml.safe_load((PROJECT / "conda.yaml").read_text())["dependencies"]
    pip_section = next(d["pip"] for d in dependencies if isinstance(d, dict) and "pip" in d)
    return sorted(pip_section)


def test_three_environment_files_pin_the_same_packages():
    expected = pins_from_pyproject()
    assert all("==" in pin for pin in expected), "every runtime dependency is pinned exactly"
    assert pins_from_python_env() == expected
    assert pins_from_conda() == expected


def test_python_versions_agree():
    python_env = yaml.safe_load((PROJECT / "python_env.yaml").read_text())["python"]
    conda_deps = yaml.safe_load((PROJECT / "conda.yaml").read_text())["dependencies"]
    assert f"python={python_env}" in conda_deps
