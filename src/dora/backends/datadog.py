"""Delivery of events to a Datadog-compatible DORA Metrics API (v2).

``POST {base}/api/v2/dora/deployment`` and ``{base}/api/v2/dora/failure`` with the event's
``api_body()``, the API key in the ``DD-API-KEY`` header; a mark is ``PATCH
{base}/api/v2/dora/deployments/{id}``, which needs an application key as well
(``DD-APPLICATION-KEY``). ``base`` is ``DORA_API_URL`` when
set, otherwise ``https://api.{site}``.

Every command gets one retry budget (``RetryPolicy.budget``, 30 s by default) for all its
attempts and waits, so that a CI step never hangs. Connection errors, timeouts, 408, 429
(honouring ``Retry-After``) and 5xx are retried with exponential backoff and full jitter;
any other 4xx is final at once (``dora.backends.http``, shared with the PagerDuty client).
``send`` returns only after a 2xx; every failure raises ``DeliveryError``, whose message
never holds either key.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dora.backends import http
from dora.backends.http import RetryPolicy
from dora.errors import DoraError, UsageError
from dora.redact import scrub

if TYPE_CHECKING:
    import httpx

    from dora.events import Deliverable

__all__ = ["DatadogBackend", "DeliveryError", "Endpoint", "RetryPolicy", "endpoint"]

SITES = (
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "datadoghq.eu",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "uk1.datadoghq.com",
)
GOVERNMENT_SITES = ("ddog-gov.com", "us2.ddog-gov.com")
DEFAULT_SITE = "datadoghq.com"
KEY_VARIABLES = ("DATADOG_API_KEY", "DD_API_KEY")
#: What a command that cannot send for want of a key says, before what becomes of the event.
NO_KEY = "no Datadog API key is set (DD_API_KEY or DATADOG_API_KEY)"
SITE_VARIABLES = ("DATADOG_SITE", "DD_SITE")
APP_KEY_VARIABLES = ("DATADOG_APP_KEY", "DD_APP_KEY", "DD_APPLICATION_KEY")
#: What a command that cannot send a mark for want of an application key says first.
NO_APP_KEY = "no Datadog application key is set (DD_APP_KEY, DATADOG_APP_KEY or DD_APPLICATION_KEY)"


_KEY = re.compile(r"[!-~]+")
_MAX_ANSWER = 64 * 1024  # bytes of an answer worth reading: Datadog's errors are short
#: bytes of a page of events read (``list_events``): 1,000 events of the largest fields
_MAX_PAGE = 64 * 1024 * 1024
#: the list endpoints' paths and request types, by the kind of event
_LISTS = {
    "deployment": ("/api/v2/dora/deployments", "dora_deployments_list_request"),
    "incident": ("/api/v2/dora/failures", "dora_failures_list_request"),
}


class DeliveryError(DoraError):
    """The backend did not accept an event. ``retryable``: a later ``dora push`` may
    succeed as it is; otherwise the event itself or the credentials must change."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(scrub(message))
        self.retryable = retryable
        self.status = status

    @property
    def about_the_endpoint(self) -> bool:
        """True when every event would fail the same way (down, bad key, wrong URL), so a
        push should stop; False when only this event was refused."""
        return self.retryable or self.status in (401, 403, 404) or 300 <= (self.status or 0) < 400


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    #: needed only to mark deployments (``PATCH``); never needed to record events
    app_key: str | None = field(default=None, repr=False)


def endpoint(
    env: Mapping[str, str], *, need_key: bool = True, labels: Mapping[str, str] | None = None
) -> Endpoint:
    """The API to post to and the key to post with, from the environment.

    ``labels`` renames a variable in error messages, for a value that came from elsewhere
    (``'site' in the config file``)."""
    labels = labels or {}
    found = next(
        ((name, env[name].strip()) for name in KEY_VARIABLES if env.get(name, "").strip()), None
    )
    if need_key and found is None:
        raise UsageError(f"{NO_KEY}: the datadog backend needs one to send")
    if found is not None and not _KEY.fullmatch(found[1]):
        raise UsageError(f"{found[0]}: an API key is printable ASCII without spaces")
    key = found[1] if found else None
    app = next(
        ((name, env[name].strip()) for name in APP_KEY_VARIABLES if env.get(name, "").strip()),
        None,
    )
    if app is not None and not _KEY.fullmatch(app[1]):
        raise UsageError(f"{app[0]}: an application key is printable ASCII without spaces")
    app_key = app[1] if app else None
    if api_url := env.get("DORA_API_URL", "").strip():
        label = labels.get("DORA_API_URL", "DORA_API_URL")
        return Endpoint(http.check_base_url(api_url, label), key, app_key)
    variable, site = next(
        ((name, env[name].strip()) for name in SITE_VARIABLES if env.get(name, "").strip()),
        ("default", DEFAULT_SITE),
    )
    given = site
    site = site.lower().removeprefix("https://").removeprefix("http://").rstrip("/")
    site = site.removeprefix("app.").removeprefix("api.")  # a pasted address, not a site
    variable = labels.get(variable, variable)
    if site in GOVERNMENT_SITES:
        raise UsageError(
            f"{variable}: Datadog does not offer DORA Metrics on {site} (Datadog for Government)"
        )
    if site not in SITES:
        raise UsageError(
            f"{variable}: '{given}' is not a Datadog site; use one of {', '.join(SITES)}"
        )
    return Endpoint(f"https://api.{site}", key, app_key)


class DatadogBackend:
    """One HTTP client for one command run; use it as a context manager."""

    def __init__(
        self,
        where: Endpoint,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = where
        self.policy = policy or RetryPolicy()
        headers = {"Accept": "application/json"}
        if where.api_key:
            headers["DD-API-KEY"] = where.api_key

        def client(max_answer: int) -> http.Client:
            return http.Client(
                where.base_url,
                headers,
                self.policy,
                describe=_answer,
                secret=(where.api_key, where.app_key),
                max_answer=max_answer,
                sleep=sleep,
                clock=clock,
                jitter=random.uniform,  # read here, so that a test can pin the jitter
            )

        self._http = client(_MAX_ANSWER)
        self._reader: http.Client | None = None
        self._client = client

    def __enter__(self) -> DatadogBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.close()
        if self._reader is not None:
            self._reader.close()

    def _unanswered(
        self, exc: http.OutOfTime | http.GaveUp, url: str, *, doing: str, refused: str
    ) -> DeliveryError:
        """The error of a request the retry budget ran out on: ``doing`` says what was
        tried (``send the deployment to``), ``refused`` what a server that answered did not
        do (``accept the deployment``)."""
        if isinstance(exc, http.OutOfTime):
            return DeliveryError(
                f"no time left to {doing} {url} (retry budget of {self.policy.budget:g}s used up)",
                retryable=True,
            )
        if exc.status is None:  # never an answer: the network, a proxy or the server
            message = f"could not reach {url} after {exc.tries}: {exc.problem}"
        else:
            message = f"Datadog did not {refused} after {exc.tries}: {exc.problem}"
        if exc.asked is not None:
            message += f"; it asked to wait {exc.asked:g}s, past the retry budget"
        return DeliveryError(message, retryable=True, status=exc.status)

    def list_events(
        self, kind: str, start: str, end: str, *, query: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """One answer of Datadog's list of ``kind`` events (``deployment`` or ``incident``)
        from ``start`` to ``end`` (ISO 8601), at most ``limit``: ``POST
        /api/v2/dora/deployments`` or ``/failures``, with both keys, within a retry budget
        of its own. The items of its ``data``; raise ``DeliveryError`` for any failure."""
        path, request_type = _LISTS[kind]
        attributes: dict[str, Any] = {"from": start, "to": end, "limit": limit}
        if query:
            attributes["query"] = query
        body = {"data": {"type": request_type, "attributes": attributes}}
        if self._reader is None:
            self._reader = self._client(_MAX_PAGE)
        self._reader.renew_budget()
        url = f"{self.endpoint.base_url}{path}"
        headers = {"Content-Type": "application/json"}
        if self.endpoint.app_key:
            headers["DD-APPLICATION-KEY"] = self.endpoint.app_key
        try:
            response = self._reader.request(
                "POST", path, content=json.dumps(body).encode(), headers=headers
            )
        except (http.OutOfTime, http.GaveUp) as exc:
            raise self._unanswered(exc, url, doing="read", refused=f"list the {kind}s") from None
        if not response.is_success:
            problem = self._reader.hide(_answer(response))
            status = response.status_code
            if status in (401, 403):
                message = (
                    f"Datadog refused the keys ({problem}); check DD_API_KEY and DD_APP_KEY "
                    "(an application key with the dora_metrics_read permission), and that "
                    "DATADOG_SITE is your account's site"
                )
            else:
                message = f"Datadog did not list the {kind}s ({problem}) at {url}"
            raise DeliveryError(message, retryable=False, status=status)
        data = http.json_body(response)
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise DeliveryError(
                f"{url} answered {response.status_code} with no list of events "
                "(is DORA_API_URL Datadog's API?)",
                retryable=False,
                status=response.status_code,
            )
        return items

    @property
    def has_key(self) -> bool:
        """Whether there is an API key to send with. Without one (a CI job that was given no
        secrets), events are kept and queued for ``dora push`` but not sent."""
        return self.endpoint.api_key is not None

    @property
    def has_app_key(self) -> bool:
        """Whether there is an application key, which marks need besides the API key; without
        one, marks are kept and queued for ``dora push``."""
        return self.endpoint.app_key is not None

    def renew_budget(self) -> None:
        """Start a fresh retry budget: ``dora push`` gives each event its own, so that a long
        backlog drains while a failing API still stops it within one budget."""
        self._http.renew_budget()

    def url(self, event: Deliverable) -> str:
        return f"{self.endpoint.base_url}{event.api_path}"

    def send(self, event: Deliverable) -> int:
        """Post ``event`` (patch a mark); return the 2xx status, or raise ``DeliveryError``."""
        payload = event.api_body()
        body = None if payload is None else json.dumps(payload).encode()
        headers = {} if body is None else {"Content-Type": "application/json"}
        if event.api_method != "POST" and self.endpoint.app_key:
            # only the requests that need it carry it
            headers["DD-APPLICATION-KEY"] = self.endpoint.app_key
        try:
            response = self._http.request(
                event.api_method,
                event.api_path,
                content=body,
                headers=headers,
                status_decides=True,  # a 2xx is a delivery, whatever its body does after
            )
        except (http.OutOfTime, http.GaveUp) as exc:
            raise self._unanswered(
                exc,
                self.url(event),
                doing=f"send the {event.kind} to",
                refused=f"accept the {event.kind}",
            ) from None
        if response.status_code == 404 and event.api_method == "DELETE":
            return response.status_code  # not there: deleted before, or never sent
        if not response.is_success:
            problem = self._http.hide(_answer(response))
            raise DeliveryError(
                _final_message(event, self.url(event), response, problem),
                retryable=False,
                status=response.status_code,
            )
        return response.status_code


def _answer(response: httpx.Response) -> str:
    """``503 Service Unavailable: <the server's own errors>``, on one line."""
    return http.status_line(response, _errors(response))


def _errors(response: httpx.Response) -> str:
    """The server's own error text: one line, no control characters, at most 300 long."""
    data: Any = http.json_body(response)
    if data is None:
        return http.one_line(response.text)
    items = data.get("errors", []) if isinstance(data, dict) else []
    parts = []
    for item in items if isinstance(items, list) else [items]:
        if isinstance(item, dict):
            item = item.get("detail") or item.get("title") or json.dumps(item)
        parts.append(str(item))
    return http.one_line("; ".join(parts))


def _final_message(event: Deliverable, url: str, response: httpx.Response, problem: str) -> str:
    status = response.status_code
    if response.is_redirect:
        target = response.headers.get("Location", "elsewhere")
        for header in ("DD-API-KEY", "DD-APPLICATION-KEY"):
            if key := response.request.headers.get(header):
                target = target.replace(key, "***")
        return f"{url} redirects to {target} ({problem}); set DORA_API_URL to where it points"
    if status in (401, 403) and event.api_method == "DELETE":
        return (
            f"Datadog refused the keys ({problem}); check DD_API_KEY and DD_APP_KEY (an "
            "application key with the dora_metrics_write permission), and that "
            "DATADOG_SITE is your account's site"
        )
    if status in (401, 403) and event.kind == "mark":
        return (
            f"Datadog refused the keys ({problem}); check DD_API_KEY and DD_APP_KEY (an "
            "application key with the DORA write permission), and that DATADOG_SITE is "
            "your account's site"
        )
    if status == 404 and (named := getattr(event, "by_version", None)) is not None:
        service, env, version = named
        return (
            f"Datadog has no deployment of {service} in env {env} with version {version} "
            f"({problem}); send it first ('dora push'), or check DORA_API_URL or DATADOG_SITE"
        )
    if status == 404 and event.kind == "mark":
        return (
            f"Datadog has no deployment {event.id} at {url} ({problem}); "
            "send it first ('dora push'), or check DORA_API_URL or DATADOG_SITE"
        )
    if status in (401, 403):
        return (
            f"Datadog refused the API key ({problem}); check DATADOG_API_KEY or DD_API_KEY, "
            "and that DATADOG_SITE is your account's site"
        )
    if status == 404:
        return f"no DORA API at {url} ({problem}); check DORA_API_URL or DATADOG_SITE"
    if status == 413:
        return f"Datadog found the {event.kind} too large ({problem}); shorten its tags"
    return f"Datadog rejected the {event.kind} ({problem}); fix the field it names"
