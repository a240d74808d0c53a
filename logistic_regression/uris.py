"""URIs the kit records or shows: relative SQLite paths made absolute, and the one
redaction every message goes through before it is printed, raised, tagged, reported,
stored or sent.

`redact(text)` hides, wherever they appear in the text:

- the user-info of any URI (`scheme://user:password@host`, `scheme://token@host`),
  whole: `scheme://***@host`;
- the values of known secret query parameters (`X-Amz-Signature`, `X-Amz-Credential`,
  `sig`, `signature`, `token`, `access_token`, `key`, `api_key`, `password`, `secret`, ...
  see SECRET_QUERY_PARAMETERS), and `Bearer`/`Basic` credentials;
- the values of credential environment variables (CREDENTIAL_VARIABLES, and any variable
  whose name says it holds a secret: SECRET_NAME), as set at the time of the call;
- the secrets the kit registered with `add_secret` (the webhook URL from the config).

A secret value shorter than MIN_SECRET_LENGTH characters is hidden only where it is a
URI's user-info or a secret parameter: hiding every "test" or "true" in a message would
make messages unreadable and protect nothing.

The kit connects with the real values and shows the redacted ones. `install()` (run by
every command's entry point) makes the redaction cover what libraries print too: it
wraps `sys.stdout` and `sys.stderr` (each write is redacted whole) and redacts every log
record when it is made (so file handlers, such as Hydra's job logs, get it as well).

Light on purpose (standard library only): the server script and every error path use it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, unquote, urlsplit

MARK = "***"
MIN_SECRET_LENGTH = 8

# Environment variables that hold credentials the kit (or MLflow, boto3) may use.
CREDENTIAL_VARIABLES = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "PGPASSWORD",
    "LOGREG_WEBHOOK_URL",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "DATABRICKS_TOKEN",
)
# Any other variable whose name says it holds a secret.
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|ACCESS_KEY|PRIVATE_KEY|WEBHOOK")

SECRET_QUERY_PARAMETERS = (
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
    "sig",
    "signature",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "auth",
    "key",
    "api_key",
    "apikey",
    "api-key",
    "access_key",
    "secret",
    "client_secret",
    "password",
    "sslpassword",  # libpq: the client key's passphrase
    "passwd",
    "pwd",
)

# `scheme://` then the user-info up to the last `@` before the host: a password with an
# unencoded `@` in it is still hidden whole.
# Hydra writes a launch line's `:` escaped (`tracking.uri=http\://u\:pw@host`): the
# scheme's colon may carry a backslash.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*\\?://)(?P<userinfo>[^/?#\s'\"<>]+)@")
_QUERY = re.compile(
    r"(?P<lead>[?&;](?:"
    + "|".join(re.escape(name) for name in SECRET_QUERY_PARAMETERS)
    + r")=)(?P<value>[^&#\s'\"<>]+)",
    re.IGNORECASE,
)


def secret_in_query(uri: str) -> bool:
    """Whether a query parameter of `uri` carries a secret (`?password=...`)."""
    return _QUERY.search(unquote(uri)) is not None


_AUTHORIZATION = re.compile(r"\b(?P<kind>Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}")

_registered: set[str] = set()


def add_secret(value: str | None) -> None:
    """Hide `value` (and, for a URL, its path and query) in every later message of this
    process: for secrets that are not in the environment, such as a webhook URL set in
    conf/local/default.yaml."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        _registered.add(value)


def _environment_secrets() -> Iterator[str]:
    for name, value in os.environ.items():
        if name in CREDENTIAL_VARIABLES or SECRET_NAME.search(name):
            yield value


def secret_values() -> list[str]:
    """Every secret text to hide now, longest first (so a secret containing another is
    hidden whole); for a URL also its path and query, which carry a webhook's token."""
    found: set[str] = set()
    for value in [*_registered, *_environment_secrets()]:
        value = value.strip()
        if len(value) < MIN_SECRET_LENGTH:
            continue
        found.add(value)
        encoded = quote(value, safe="")
        if encoded != value:
            found.add(encoded)
        if "://" in value:
            parts = urlsplit(value)
            tail = parts.path + (f"?{parts.query}" if parts.query else "")
            if len(tail) >= MIN_SECRET_LENGTH:
                found.add(tail)
    return sorted(found, key=len, reverse=True)


def redact(text: str) -> str:
    """`text` with every secret hidden as `***` (see the module docstring)."""
    if not text:
        return text
    for secret in secret_values():
        if secret in text:
            text = text.replace(secret, MARK)
    text = _USERINFO.sub(rf"\g<scheme>{MARK}@", text)
    text = _QUERY.sub(rf"\g<lead>{MARK}", text)
    return _AUTHORIZATION.sub(rf"\g<kind> {MARK}", text)


def redact_tree(value: Any) -> Any:
    """Every string in nested dicts, lists and tuples redacted (keys too); other values
    as they are. For structures that are then serialised (JSON bodies, YAML files)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_tree(key): redact_tree(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_tree(item) for item in value)
    return value


# A setting whose name says it holds a secret (`+tracking.password=...`, `api_token: ...`).
SECRET_SETTING = r"[\w-]*(?:password|passwd|secret|token|api_key|access_key|private_key)[\w-]*"


def hide_secret_settings(text: str, keys: Iterable[str]) -> str:
    """Config text (YAML, or Hydra overrides) with the value of each of these keys
    (`group.key`, matched by their last part) and of any key named like a secret
    (SECRET_SETTING) shown as '***', unless it is empty, null or an interpolation
    (`${oc.env:...}`); then redacted as any text."""
    names = "|".join([*(re.escape(key.rsplit(".", 1)[-1]) for key in keys), SECRET_SETTING])
    setting = re.compile(
        rf"(?P<key>\b(?:{names})\s*[:=]\s*)(?!''|\"\"|null\s*$|\$\{{)(?P<value>\S.*)$",
        re.MULTILINE | re.IGNORECASE,
    )
    return redact(setting.sub(rf"\g<key>'{MARK}'", text))


def has_userinfo(uri: str) -> bool:
    """True when `uri` carries credentials in its user-info (`scheme://user:pw@host`)."""
    return bool(_USERINFO.match(uri.strip()))


def without_redacted_userinfo(uri: str) -> str:
    """A URI recorded redacted (`https://***@host/repo.git`) without the hidden user-info,
    so a client authenticates its own way (a git credential helper, the environment)."""
    return uri.replace(f"://{MARK}@", "://", 1)


def reveal(shown: str, variable: str = "MLFLOW_TRACKING_URI") -> str:
    """The real URI behind `shown`, a redacted one the kit recorded: the value of
    `variable` when it redacts to `shown` (connect with the real URI, show the redacted
    one); otherwise `shown` itself."""
    real = os.environ.get(variable, "")
    return real if real and real != shown and redact(real) == shown else shown


# -- covering what libraries print and log ------------------------------------------


# What a terminal acts on instead of showing: C0 controls but tab and newline (a carriage
# return rewrites the line it is on), DEL, C1, and the bidirectional overrides that
# reorder what a line shows. Colour and weight (SGR, `ESC [ ... m`) pass; every other
# escape sequence (clear-screen, cursor moves, OSC 8 links, OSC 52 clipboard writes) is
# shown escaped, as is any of these in a run name, a param, a tag or a column header.
_CONTROL = re.compile(
    r"(\x1b\[[0-9;]{0,32}m)|([\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069])"
)


def _escaped(found: re.Match) -> str:
    if found.group(1):
        return found.group(1)
    code = ord(found.group(2))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control character shown escaped (`\\x1b`, `\\u202e`)."""
    return _CONTROL.sub(_escaped, text)


class RedactingStream:
    """A text stream that redacts each write, shows its control characters escaped
    (`printable`) and passes it on; everything else (isatty, fileno, encoding, flush,
    ...) is the wrapped stream's."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    @property
    def wrapped(self) -> TextIO:
        return self._stream

    def write(self, text: str) -> int:
        self._stream.write(printable(redact(text)) if isinstance(text, str) else text)
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _redacting_factory(make_record):
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: leave it to logging's own error report
            return record
        record.msg, record.args = printable(redact(message)), None
        if record.exc_info and not record.exc_text:
            shown = logging.Formatter().formatException(record.exc_info)
            record.exc_text = printable(redact(shown))
        if record.stack_info:
            record.stack_info = printable(redact(record.stack_info))
        return record

    factory.kit_redacts = True
    return factory


def install() -> None:
    """Redact what this process prints and logs, from now on (idempotent)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream))
    current = logging.getLogRecordFactory()
    if not getattr(current, "kit_redacts", False):
        logging.setLogRecordFactory(_redacting_factory(current))


def absolute_tracking_uri(uri: str, base: Path | None = None) -> str:
    """A relative `sqlite:///mlflow.db` made absolute (against `base`, default the working
    folder), so a child process in another folder records into the same store."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(((base or Path.cwd()) / uri[len(prefix) :]).resolve())
    return uri


def store_uri(uri: str, base: Path | None = None) -> str:
    """A tracking URI in one absolute form (what the spool records and stores are compared
    by): a relative SQLite file or a plain folder (a file store) made absolute against
    `base`, default the working folder."""
    uri = absolute_tracking_uri(uri, base)
    prefix = "sqlite:///"
    if uri.startswith(prefix):
        return prefix + str(Path(uri[len(prefix) :]).resolve())
    if uri and uri != "databricks" and not re.match(r"^[A-Za-z][\w+.-]*:", uri):  # a file store
        return str(((base or Path.cwd()) / Path(uri).expanduser()).resolve())
    return uri
