"""Delivery of events to a Datadog-compatible DORA Metrics API (v2).

``POST {base}/api/v2/dora/deployment`` and ``{base}/api/v2/dora/failure`` with the event's
``api_body()``, the API key in the ``DD-API-KEY`` header. ``base`` is ``DORA_API_URL`` when
set, otherwise ``https://api.{site}``.

Every command gets one retry budget (``RetryPolicy.budget``, 30 s by default) for all its
attempts and waits, so that a CI step never hangs. Connection errors, timeouts, 408, 429
(honouring ``Retry-After``) and 5xx are retried with exponential backoff and full jitter;
any other 4xx is final at once. ``send`` returns only after a 2xx; every failure raises
``DeliveryError``, whose message never holds the API key.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dora import __version__
from dora.errors import DoraError, UsageError
from dora.redact import scrub

if TYPE_CHECKING:
    import httpx

    from dora.events import Event

log = logging.getLogger(__name__)

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
SITE_VARIABLES = ("DATADOG_SITE", "DD_SITE")


_KEY = re.compile(r"[!-~]+")
_MAX_ANSWER = 64 * 1024  # bytes of an answer worth reading: Datadog's errors are short
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


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
        raise UsageError("the datadog backend needs an API key: set DATADOG_API_KEY or DD_API_KEY")
    if found is not None and not _KEY.fullmatch(found[1]):
        raise UsageError(f"{found[0]}: an API key is printable ASCII without spaces")
    key = found[1] if found else None
    if api_url := env.get("DORA_API_URL", "").strip():
        return Endpoint(_check_api_url(api_url, labels.get("DORA_API_URL", "DORA_API_URL")), key)
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
    return Endpoint(f"https://api.{site}", key)


def _check_api_url(api_url: str, label: str) -> str:
    """``DORA_API_URL`` as a base for the API paths: http(s), a host, no query or fragment."""
    from urllib.parse import urlsplit

    problem = f"{label}: '{api_url}' is not an http:// or https:// URL with a host"
    try:
        parts = urlsplit(api_url)
        port = parts.port  # raises on a port out of range
    except ValueError:
        raise UsageError(problem) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or port == 0:
        raise UsageError(problem)
    if parts.query or parts.fragment or " " in api_url:
        raise UsageError(f"{label}: '{api_url}' must not have a query, fragment or space")
    return api_url.rstrip("/")


@dataclass(frozen=True)
class RetryPolicy:
    budget: float = 30.0  # seconds for every attempt and wait of one command
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    base_delay: float = 0.5
    max_delay: float = 8.0


def _retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


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
        import httpx

        self.endpoint = where
        self.policy = policy or RetryPolicy()
        self._sleep, self._clock = sleep, clock
        self.renew_budget()
        headers = {"User-Agent": f"dora/{__version__}", "Accept": "application/json"}
        if where.api_key:
            headers["DD-API-KEY"] = where.api_key
        self._client = httpx.Client(
            base_url=where.base_url,
            headers=headers,
            timeout=httpx.Timeout(self.policy.read_timeout, connect=self.policy.connect_timeout),
            trust_env=True,  # HTTPS_PROXY, HTTP_PROXY, NO_PROXY
        )

    def __enter__(self) -> DatadogBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._client.close()

    def renew_budget(self) -> None:
        """Start a fresh retry budget: ``dora push`` gives each event its own, so that a long
        backlog drains while a failing API still stops it within one budget."""
        self._deadline = self._clock() + self.policy.budget

    def url(self, event: Event) -> str:
        return f"{self.endpoint.base_url}{event.api_path}"

    def send(self, event: Event) -> int:
        """Post ``event``; return the 2xx status, or raise ``DeliveryError``."""
        import httpx

        body = json.dumps(event.api_body()).encode()
        attempts = 0
        started = self._clock()
        while True:
            remaining = self._deadline - self._clock()
            if remaining <= 0:
                raise DeliveryError(
                    f"no time left to send the {event.kind} to {self.url(event)} "
                    f"(retry budget of {self.policy.budget:g}s used up)",
                    retryable=True,
                )
            attempts += 1
            try:
                response = self._post(event.api_path, body, remaining)
            except httpx.TimeoutException as exc:
                problem, status, wait = f"timed out ({type(exc).__name__})", None, None
            except httpx.HTTPError as exc:  # connection, protocol, decoding...
                problem, status, wait = self._hide(_transport_problem(exc)), None, None
            else:
                if response.is_success:
                    log.debug(
                        "POST %s attempt %d: %s", self.url(event), attempts, response.status_code
                    )
                    return response.status_code
                status = response.status_code
                problem = self._hide(_answer(response))
                if not _retryable(status):
                    raise DeliveryError(
                        _final_message(event, self.url(event), response, problem),
                        retryable=False,
                        status=status,
                    )
                wait = _retry_after(response)
            # Retry-After is the least to wait; backing off still applies, so that a
            # server answering "0" again and again is not hammered
            delay = max(wait or 0.0, self._backoff(attempts))
            if self._clock() + delay >= self._deadline:
                log.debug("POST %s attempt %d: %s; giving up", self.url(event), attempts, problem)
                took = self._clock() - started
                tries = f"{attempts} attempt{'s' if attempts > 1 else ''} in {took:.1f}s"
                if status is None:  # never an answer: the network, a proxy or the server
                    message = f"could not reach {self.url(event)} after {tries}: {problem}"
                else:
                    message = f"Datadog did not accept the {event.kind} after {tries}: {problem}"
                if wait is not None and wait > delay - 1e-9 and wait > 0:
                    message += f"; it asked to wait {wait:g}s, past the retry budget"
                raise DeliveryError(message, retryable=True, status=status)
            log.debug(
                "POST %s attempt %d: %s; next try in %.1fs",
                self.url(event),
                attempts,
                problem,
                delay,
            )
            self._sleep(delay)

    def _post(self, path: str, body: bytes, remaining: float) -> httpx.Response:
        """One POST whose answer is read within the budget and kept to ``_MAX_ANSWER`` bytes:
        a server that trickles its answer cannot hold the command past its budget."""
        import httpx

        request = self._client.build_request(
            "POST",
            path,
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=httpx.Timeout(
                min(self.policy.read_timeout, remaining),
                connect=min(self.policy.connect_timeout, remaining),
            ),
        )
        response = self._client.send(request, stream=True)
        kept, size = [], 0
        try:
            for chunk in response.iter_bytes():
                if size < _MAX_ANSWER:
                    kept.append(chunk[: _MAX_ANSWER - size])
                size += len(chunk)
                if self._clock() > self._deadline:
                    raise httpx.ReadTimeout(
                        "the answer outlasted the retry budget", request=request
                    )
        finally:
            response.close()
        headers = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            response.status_code, headers=headers, content=b"".join(kept), request=request
        )

    def _hide(self, text: str) -> str:
        """``text`` without the API key, should a server quote it back."""
        key = self.endpoint.api_key
        return text.replace(key, "***") if key else text

    def _backoff(self, attempts: int) -> float:
        ceiling = min(self.policy.max_delay, self.policy.base_delay * 2 ** (attempts - 1))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


def _answer(response: httpx.Response) -> str:
    """``503 Service Unavailable: <the server's own errors>``, on one line."""
    text = f"{response.status_code} {response.reason_phrase}".strip()
    errors = _errors(response)
    return f"{text}: {errors}" if errors else text


def _errors(response: httpx.Response) -> str:
    """The server's own error text: one line, no control characters, at most 300 long."""
    try:
        data: Any = response.json()
    except ValueError:
        return _one_line(response.text)
    items = data.get("errors", []) if isinstance(data, dict) else []
    parts = []
    for item in items if isinstance(items, list) else [items]:
        if isinstance(item, dict):
            item = item.get("detail") or item.get("title") or json.dumps(item)
        parts.append(str(item))
    return _one_line("; ".join(parts))


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _final_message(event: Event, url: str, response: httpx.Response, problem: str) -> str:
    status = response.status_code
    if response.is_redirect:
        target = response.headers.get("Location", "elsewhere")
        if key := response.request.headers.get("DD-API-KEY"):
            target = target.replace(key, "***")
        return f"{url} redirects to {target} ({problem}); set DORA_API_URL to where it points"
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


def _transport_problem(exc: Exception) -> str:
    name = type(exc).__name__
    detail = " ".join(str(exc).split())
    return f"{name}: {detail}" if detail else name


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (a number or an HTTP date), if there is one."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    from datetime import datetime, timezone

    if moment.tzinfo is None:  # "-0000" and zone-less dates: HTTP dates are in UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())
