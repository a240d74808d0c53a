"""The kit uses MLflow only through its public API: no `mlflow.store`, `mlflow.utils`
or `mlflow.server` module, and no private (`_`-prefixed) module or name."""

from __future__ import annotations

import ast

from conftest import PROJECT

FORBIDDEN = ("mlflow.store", "mlflow.utils", "mlflow.server")


def private_mlflow_uses(source: str) -> list[str]:
    """Every import of a non-public part of MLflow in this source, as `line: what`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported = [(alias.name, "") for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported = [(node.module, alias.name) for alias in node.names]
        else:
            continue
        for module, name in imported:
            full = f"{module}.{name}" if name else module
            if full.split(".")[0] != "mlflow":
                continue
            if full.startswith(tuple(f"{f}." for f in FORBIDDEN)) or full in FORBIDDEN:
                found.append(f"{node.lineno}: {full}")
            elif any(part.startswith("_") for part in full.split(".")):
                found.append(f"{node.lineno}: {full}")
    return found


# The team server's app plugin extends MLflow's server app the documented way
# (`--app-name`, the `mlflow.app` entry point: MLflow's "Custom Authentication" page
# imports `mlflow.server.app`), on top of MLflow's own basic-auth app factory.
SERVER_PLUGIN = "logistic_regression/server_app.py"
PLUGIN_INTERFACE = {"mlflow.server.app", "mlflow.server.auth.create_app"}


def test_the_package_imports_only_public_mlflow():
    package = PROJECT / "logistic_regression"
    offending = {
        str(path.relative_to(PROJECT)): uses
        for path in sorted(package.rglob("*.py"))
        if (uses := private_mlflow_uses(path.read_text(encoding="utf-8")))
    }
    plugin = offending.pop(SERVER_PLUGIN, [])
    assert {use.split(": ")[1] for use in plugin} <= PLUGIN_INTERFACE, plugin
    assert not offending, offending


def test_the_check_catches_internal_and_private_imports():
    caught = [
        "from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository",
        "import mlflow.utils.file_utils",
        "from mlflow import server",
        "from mlflow.server import app",
        "from mlflow.tracking._tracking_service import utils",
        "from mlflow.tracking import _get_store",
        "from mlflow import _private",
    ]
    fine = ["import mlflow", "from mlflow.tracking import MlflowClient", "import mlflow.pyfunc"]
    assert all(private_mlflow_uses(line) for line in caught), caught
    assert not any(private_mlflow_uses(line) for line in fine)
