"""environment.txt: what it pins, which packages it says the run imports, and how two
environments are compared (packages.py)."""

from __future__ import annotations

import importlib.metadata

import mlflow
import sklearn

from logistic_regression import packages
from logistic_regression.config import PROJECT_DIR
from logistic_regression.packages import Environment


def test_the_kits_closure_holds_what_it_imports_and_not_the_test_tools():
    closure = packages.runtime_closure(packages.kit_requirements(PROJECT_DIR))
    # direct dependencies, and what they pull in (numpy through scikit-learn, an extra's
    # package through psycopg[binary])
    assert {"mlflow", "scikit-learn", "numpy", "scipy", "psycopg", "psycopg-binary"} <= closure
    assert not {"pytest", "ruff", "mypy", "pytest-xdist"} & closure


def test_requirements_come_from_the_project_file_then_the_installed_metadata(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["scikit-learn==1.8.0"]\n'
    )
    assert packages.kit_requirements(tmp_path) == ["scikit-learn==1.8.0"]
    installed = importlib.metadata.distribution(packages.KIT).requires or []
    runtime_only = packages.kit_requirements(tmp_path / "no-project-here")
    assert runtime_only == installed and any("mlflow" in r for r in runtime_only)


def test_a_marker_or_extra_that_does_not_apply_pulls_in_nothing():
    closure = packages.runtime_closure(
        ['pytest; python_version < "3.0"', "mlflow==0.0; extra == 'never'", "no-such-dist-x"]
    )
    assert closure == frozenset()


def test_the_lock_pins_every_package_and_says_which_the_run_imports():
    here = packages.current(PROJECT_DIR)
    text = packages.lock(here)
    lines = text.splitlines()
    assert lines[0].startswith(f"# python {here.python}")
    assert f"mlflow=={mlflow.__version__}" in lines
    assert f"scikit-learn=={sklearn.__version__}" in lines
    runtime = lines.index(packages.RUNTIME_HEADER)
    others = lines.index(packages.OTHERS_HEADER)
    assert runtime < lines.index(f"mlflow=={mlflow.__version__}") < others
    assert lines.index(f"pytest=={importlib.metadata.version('pytest')}") > others
    back = packages.parse(text)
    assert back == here


def test_a_record_from_before_the_sections_has_no_runtime_and_pins_everything():
    old = "# python 3.11.7 (CPython)\n# platform Linux-x86_64\nMLflow==3.17.2\nruff==0.1\n"
    parsed = packages.parse(old)
    assert parsed == Environment("3.11.7", {"mlflow": "3.17.2", "ruff": "0.1"}, None)
    assert parsed.pins() == ["mlflow==3.17.2", "ruff==0.1"]


def test_pins_are_what_the_run_imports_without_the_kit_itself():
    environment = Environment(
        "3.11.7",
        {"mlflow": "3", "pytest": "9", packages.KIT: "0.1.0"},
        frozenset({"mlflow", packages.KIT}),
    )
    assert environment.pins() == ["mlflow==3"]


def test_differences_fold_the_tools_the_run_never_imports():
    before = Environment("3.11.7", {"scikit-learn": "1.8.0", "pytest": "8", "ruff": "1"},
                         frozenset({"scikit-learn"}))  # fmt: skip
    after = Environment("3.11.7", {"scikit-learn": "1.9.1", "ruff": "2"}, frozenset())
    found = packages.differences(before, after, frozenset())
    assert found.relevant == [("scikit-learn", "1.8.0", "1.9.1")]
    assert found.others == ["pytest", "ruff"]
    same = packages.differences(before, before, frozenset())
    assert same.relevant == [] and same.others == []
