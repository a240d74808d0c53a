"""The team server's app (`mlflow server --app-name kit-auth`): MLflow's basic-auth app
with the checks a server shared by several people needs and MLflow leaves open.

MLflow checks who may read or change an experiment, a run or a registered model. It
does not check what a request points the server itself at, and the server's own keys
reach every artifact. So, before MLflow handles a request (after its login check):

- a model version's `source` must be `runs:/`, `models:/` or `mlflow-artifacts:/` of
  something the caller may read (asked of MLflow itself, with the caller's own login):
  else any user could read another's run files, or any object the server's S3 keys
  reach, through `model-versions/get-artifact`;
- an experiment gets the server's artifact location, never one the request names:
  else a user could write into another's run folder, or onto the server's own disk;
- `users/list` (every username and admin flag) is for admins;
- a login other than basic auth (a Bearer token) is a 401, not a 500 from the auth
  app's cache.

What these do and do not protect is in docs/team-server.md.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from urllib.parse import unquote, urlsplit

ENTRY_POINT = "kit-auth"
SOURCE_SCHEMES = ("runs", "models", "mlflow-artifacts")
# The endpoints checked here, at any API version and under /api or /ajax-api.
_ENDPOINT = re.compile(r"/(?:ajax-)?api/\d\.0/mlflow/(?P<name>[a-z-]+/[a-z-]+)$")


def _error(status: int, code: str, message: str, **headers: str):
    from flask import Response

    body = json.dumps({"error_code": code, "message": message})
    return Response(body, status=status, mimetype="application/json", headers=headers)


def _endpoint(path: str) -> str | None:
    found = _ENDPOINT.search(path.rstrip("/"))
    return found.group("name") if found else None


def _basic_login(header: str | None) -> tuple[str, str] | None:
    """(username, password) of a well-formed Basic Authorization header, else None."""
    if not header or not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[len("Basic ") :], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, colon, password = decoded.partition(":")
    return (username, password) if colon and username else None


def refuse_other_logins():
    """A request with an Authorization header that is not basic auth: 401, in one line.
    (MLflow's basic-auth app answered a Bearer token with a 500 and a traceback.)"""
    from flask import request

    header = request.headers.get("Authorization")
    if header is not None and _basic_login(header) is None:
        return _error(
            401,
            "UNAUTHENTICATED",
            "this server takes a username and password (basic auth: MLFLOW_TRACKING_USERNAME "
            "and MLFLOW_TRACKING_PASSWORD); a token or another kind of login is refused",
            **{"WWW-Authenticate": 'Basic realm="mlflow"'},
        )
    return None


def _ask(path: str, query: dict[str, str]):
    """MLflow's answer to this GET for the caller (its basic-auth app checks it with the
    caller's own login): the permission decision stays MLflow's, nothing decided here."""
    from flask import current_app, request

    headers = {"Authorization": request.headers.get("Authorization", "")}
    with current_app.test_client() as client:
        return client.get(f"/api/2.0/mlflow/{path}", query_string=query, headers=headers)


def _may_read(path: str, query: dict[str, str]) -> bool:
    return _ask(path, query).status_code == 200


def _source_readable(source: str) -> bool:
    parts = urlsplit(source)
    if parts.scheme not in SOURCE_SCHEMES or parts.netloc or ".." in unquote(parts.path):
        return False
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if not segments:
        return False
    if parts.scheme == "runs":
        return _may_read("runs/get", {"run_id": segments[0]})
    if parts.scheme == "models":
        if segments[0].startswith("m-") and len(segments) == 1:
            return _may_read(f"logged-models/{segments[0]}", {})
        return _may_read("registered-models/get", {"name": segments[0]})
    # mlflow-artifacts:/<experiment id>/...: under the server's destination, where every
    # experiment's folder is named by its id (no other location is allowed, see below).
    return _may_read("experiments/get", {"experiment_id": segments[0]})


def check_request():
    """The kit's checks, after MLflow's own login and permission check passed."""
    from flask import request

    endpoint = _endpoint(request.path)
    if endpoint is None:
        return None
    if endpoint == "users/list" and request.method == "GET":
        return _only_admins()
    if request.method != "POST":
        return None
    body = request.get_json(silent=True) or {}
    if endpoint == "experiments/create" and body.get("artifact_location"):
        return _error(
            400,
            "INVALID_PARAMETER_VALUE",
            "artifact_location is chosen by this server: experiments are stored under its "
            "artifacts destination; create the experiment without one",
        )
    if endpoint == "model-versions/create":
        source = str(body.get("source", ""))
        if not _source_readable(source):
            return _error(
                403,
                "PERMISSION_DENIED",
                f"model version source {source[:200]!r} refused: it must be runs:/, "
                "models:/ or mlflow-artifacts:/ of something you may read",
            )
    return None


def _only_admins():
    login = _basic_login(_authorization())
    answer = _ask("users/get", {"username": login[0]}) if login else None
    user = (answer.get_json(silent=True) or {}).get("user", {}) if answer else {}
    if answer is None or answer.status_code != 200 or not user.get("is_admin"):
        return _error(403, "PERMISSION_DENIED", "only an admin may list the server's users")
    return None


def _authorization() -> str | None:
    from flask import request

    return request.headers.get("Authorization")


def create_app():
    """MLflow's basic-auth app with the kit's checks: the refusal of other logins runs
    first, the rest after MLflow's own check (which answers 401/403 itself). Extending
    `mlflow.server.app` this way is MLflow's documented plugin interface for a server
    app (`--app-name`, the `mlflow.app` entry point; "Custom Authentication")."""
    from mlflow.server import app as flask_app
    from mlflow.server.auth import create_app as basic_auth_app

    served = basic_auth_app(flask_app)
    flask_app.before_request_funcs.setdefault(None, []).insert(0, refuse_other_logins)
    flask_app.before_request(check_request)
    return served
