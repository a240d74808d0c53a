"""Tell a chat or a service when a run ends: POST a JSON summary to a webhook.

A single run notifies when it ends; a sweep notifies once, for its parent (with
`best_<metric>`), not for each configuration.

The URL is a secret (it usually embeds a token): it comes from LOGREG_WEBHOOK_URL or
`notify.webhook_url` in the git-ignored conf/local/default.yaml, and is never logged,
printed, stored in params or tags, or written to the report or config.yaml: it is
registered with `uris.add_secret`, so every message of the process hides it, and every
string of the body sent is redacted (`uris.redact_tree`). Sending happens in a daemon
thread that the run waits for at most `notify.timeout_s`: a webhook that fails or hangs
costs a warning, never the run. A redirect is not followed (it could send the summary
to any host): it is a warning too.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping

from logistic_regression.config import KEY_METRICS, Config
from logistic_regression.errors import first_line
from logistic_regression.status import Status
from logistic_regression.tracking import runs
from logistic_regression.uris import add_secret, redact, redact_tree

log = logging.getLogger("logistic_regression")


def run_link(ui_url: str, tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI people open: `notify.ui_url`, else the tracking
    server's address; "" for a local store with no UI set (a link to some `mlflow ui` on
    the reader's own machine would point nowhere)."""
    base = ui_url or (tracking_uri if tracking_uri.startswith(("http://", "https://")) else "")
    if not base:
        return ""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def payload(
    run_id: str,
    run_name: str,
    status: str,
    metrics: Mapping[str, float],
    link: str,
    error: str = "",
) -> dict:
    """The JSON body; `text` makes it readable as-is by Slack/Mattermost/Teams-style hooks."""
    key = {name: metrics[name] for name in KEY_METRICS if name in metrics}
    key.update({name: value for name, value in metrics.items() if name.startswith("best_")})
    shown = ", ".join(f"{name}={value:.4f}" for name, value in key.items())
    verb = "finished" if status == Status.FINISHED else status.lower()
    text = f"Run {run_name} ({run_id[:8]}) {verb}" + (f": {shown}" if shown else "")
    if error:
        text += f". Error: {error}"
    body = {
        "text": f"{text}. {link}" if link else f"{text}.",
        "run_id": run_id,
        "run_name": run_name,
        "status": status,
        "metrics": key,
    }
    if link:
        body["link"] = link
    if error:
        body["error"] = error
    return body


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a place to go: urllib would follow a 302/303 to any
    host (or `ftp://`), as a GET without the body, and call the hook's 200 a success.
    Refused, the 3xx is reported as the failure it is for a webhook."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _post(url: str, body: dict, timeout: float, outcome: list[str]) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            outcome.append(f"HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        moved = " (redirects are not followed)" if 300 <= exc.code < 400 else ""
        outcome.append(f"failed: HTTP Error {exc.code}: {exc.reason}{moved}")
    except Exception as exc:  # any failure becomes the warning's reason
        outcome.append(f"failed: {type(exc).__name__}: {exc}")


def send(url: str, body: dict, timeout: float) -> bool:
    """POST `body`; wait at most `timeout` seconds. True when the hook answered 2xx."""
    if not url:
        return False
    add_secret(url)
    outcome: list[str] = []
    body = redact_tree(body)
    sender = threading.Thread(target=_post, args=(url, body, timeout, outcome), daemon=True)
    sender.start()
    sender.join(timeout)
    if sender.is_alive() or not outcome or "TimeoutError" in outcome[0]:
        log.warning("webhook did not answer within %gs; the run is not affected", timeout)
        return False
    result = redact(outcome[0].replace(url, "<webhook>"))
    if not result.startswith("HTTP 2"):
        log.warning("webhook notification %s; the run is not affected", result)
        return False
    return True


def run_ended(config: Config, tracking_uri: str, run_id: str, status: str, error: str = "") -> None:
    """POST the ended run's summary to the webhook, if one is set (a failure is a warning).
    `tracking_uri`: the store the run is in (the link to its page, on a tracking server)."""
    if not config.notify.webhook_url or not run_id:
        return
    add_secret(config.notify.webhook_url)
    try:
        with runs.bounded_store():
            info, metrics = runs.run_summary(run_id)
    except Exception as exc:  # never hide the run's own outcome behind the webhook's
        log.warning("webhook not notified: reading run %s failed: %s", run_id, first_line(exc))
        return
    body = payload(
        run_id,
        info.run_name,
        status,
        metrics,
        run_link(redact(config.notify.ui_url), redact(tracking_uri), info.experiment_id, run_id),
        redact(error),
    )
    send(config.notify.webhook_url, body, config.notify.timeout_s)
