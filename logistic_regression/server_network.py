"""How the team server meets the network: where it listens, over TLS or not, and which
Host headers and browser origins it answers.

- TLS: `tls_certfile` and `tls_keyfile` (PEM) are handed to uvicorn, the server MLflow
  runs (`--uvicorn-opts --ssl-certfile ... --ssl-keyfile ...`), so the script serves
  HTTPS itself, with nothing else to install or keep running. (A reverse proxy from
  Debian, nginx say, is the better fit where one already terminates TLS for the team:
  then keep `host: 127.0.0.1` here and point the proxy at it.) Clients trust the
  certificate's CA with MLFLOW_TRACKING_SERVER_CERT_PATH.
- A `host` other than loopback is refused unless `auth: true` and TLS are both on:
  basic auth sends each password with every request, readable on the wire without TLS.
- `allowed_hosts` and `cors_allowed_origins` (comma-separated, MLflow's own flags):
  empty means this server's own names only (loopback, and `host` itself), not MLflow's
  default of every private address, which lets a page on any intranet host send the
  browser's requests to the server (DNS rebinding, CORS).
"""

from __future__ import annotations

import ipaddress
import shlex
import ssl
import urllib.request
from typing import TYPE_CHECKING

from logistic_regression.errors import ConfigError
from logistic_regression.server_auth import in_project

if TYPE_CHECKING:
    from logistic_regression.server import ServerConfig

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls(config: ServerConfig) -> bool:
    return bool(config.tls_certfile or config.tls_keyfile)


def check(config: ServerConfig) -> None:
    """Refuse, in one line, a server that would listen beyond this machine unprotected,
    or TLS files that are missing or half given."""
    if bool(config.tls_certfile) != bool(config.tls_keyfile):
        raise ConfigError(
            "tls_certfile and tls_keyfile go together: give both (PEM files), or neither"
        )
    for name in ("tls_certfile", "tls_keyfile"):
        value = getattr(config, name)
        if value and not in_project(value).is_file():
            raise ConfigError(f"{name}={value}: no such file (a PEM file is expected)")
    if not is_loopback(config.host) and not (config.auth and tls(config)):
        missing = [
            *([] if config.auth else ["auth=true"]),
            *([] if tls(config) else ["tls_certfile and tls_keyfile"]),
        ]
        raise ConfigError(
            f"host={config.host} is not allowed without {' and '.join(missing)}: a server "
            "reachable from other machines must check logins, and over TLS, since basic "
            "auth sends the password with every request; or keep host=127.0.0.1 behind a "
            "TLS-terminating proxy"
        )


def _names(config: ServerConfig) -> list[str]:
    names = ["127.0.0.1", "localhost"]
    if config.host not in ("0.0.0.0", "::", "", *names):
        names.append(config.host)
    return names


def allowed_hosts(config: ServerConfig) -> str:
    if config.allowed_hosts:
        return config.allowed_hosts
    return ",".join(f"{name}{port}" for name in _names(config) for port in ("", f":{config.port}"))


GRACEFUL_STOP_S = 5


def cors_allowed_origins(config: ServerConfig) -> str:
    if config.cors_allowed_origins:
        return config.cors_allowed_origins
    scheme = "https" if tls(config) else "http"
    return ",".join(f"{scheme}://{name}:{config.port}" for name in _names(config))


def flags(config: ServerConfig) -> list[str]:
    """The `mlflow server` options for TLS, allowed hosts and origins."""
    listed = ["--allowed-hosts", allowed_hosts(config)]
    listed += ["--cors-allowed-origins", cors_allowed_origins(config)]
    # A stop waits at most this long for open connections (a client's idle keep-alive
    # one over TLS held it until the stop's SIGKILL, 15 s later), then closes them.
    opts = f"--timeout-graceful-shutdown {GRACEFUL_STOP_S}"
    if tls(config):
        certfile, keyfile = in_project(config.tls_certfile), in_project(config.tls_keyfile)
        opts += (
            f" --ssl-certfile {shlex.quote(str(certfile))}"
            f" --ssl-keyfile {shlex.quote(str(keyfile))}"
        )
    return [*listed, "--uvicorn-opts", opts]


def url(config: ServerConfig) -> str:
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    host = f"[{host}]" if ":" in host else host
    return f"{'https' if tls(config) else 'http'}://{host}:{config.port}"


def healthy(config: ServerConfig, timeout: float = 2.0) -> bool:
    """Whether this machine's own server answers /health. Over TLS the certificate is not
    checked: the question is whether the process is up, and nothing secret is sent."""
    context = None
    if tls(config):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(
            f"{url(config)}/health", timeout=timeout, context=context
        ) as response:
            return response.status == 200
    except OSError:
        return False
