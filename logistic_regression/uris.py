"""URIs the kit records or shows: relative SQLite paths made absolute, passwords hidden.

Light on purpose (standard library only): the server script and every error path use it.
"""

from __future__ import annotations

import re
from pathlib import Path

_URI_PASSWORD = re.compile(r"(?P<scheme>[A-Za-z][\w+.-]*://)(?P<user>[^/@:\s]*):[^/@\s]*@")


def redact(text: str) -> str:
    """Hide the password of any `scheme://user:password@host` in a value bound for MLflow."""
    return _URI_PASSWORD.sub(r"\g<scheme>\g<user>:***@", text)


def absolute_tracking_uri(uri: str, base: Path | None = None) -> str:
    """A relative `sqlite:///mlflow.db` made absolute (against `base`, default the working
    folder), so a child process in another folder records into the same store."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(((base or Path.cwd()) / uri[len(prefix) :]).resolve())
    return uri
