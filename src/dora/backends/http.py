"""What dora's HTTP clients share: a retry budget, backoff, and answers read within it.

``Client.request`` makes one request and retries it while the answer is worth waiting
for: connection errors, timeouts, 408, 429 and 5xx, with exponential backoff and full
jitter, never waiting less than a ``Retry-After`` asks. Every attempt and wait comes out of
one budget (``RetryPolicy.budget``, renewed with ``renew_budget``), so that a command never
hangs. It returns the first answer that is a success or final (any other status), and
raises ``GaveUp`` or ``OutOfTime`` otherwise; each service turns those into its own words.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dora import __version__
from dora.errors import UsageError

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class RetryPolicy:
    budget: float = 30.0  # seconds for every attempt and wait of one command
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    base_delay: float = 0.5
    max_delay: float = 8.0


class OutOfTime(Exception):
    """The budget was used up before the request could be made at all."""


class GaveUp(Exception):
    """Every attempt the budget allowed failed; ``problem`` is the last failure, ``status``
    its HTTP status (None: no answer), ``asked`` a ``Retry-After`` that outlasted the budget."""

    def __init__(
        self, attempts: int, took: float, problem: str, status: int | None, asked: float | None
    ) -> None:
        super().__init__(problem)
        self.attempts, self.took, self.problem = attempts, took, problem
        self.status, self.asked = status, asked

    @property
    def tries(self) -> str:
        """``5 attempts in 7.5s``."""
        return f"{self.attempts} attempt{'s' if self.attempts > 1 else ''} in {self.took:.1f}s"


def check_base_url(value: str, label: str) -> str:
    """A URL given as the base of an API's paths: http(s), a host, no query or fragment;
    without its trailing slashes. ``label`` names where it came from in errors."""
    from urllib.parse import urlsplit

    problem = f"{label}: '{value}' is not an http:// or https:// URL with a host"
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a port out of range
    except ValueError:
        raise UsageError(problem) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or port == 0:
        raise UsageError(problem)
    if parts.query or parts.fragment or " " in value:
        raise UsageError(f"{label}: '{value}' must not have a query, fragment or space")
    return value.rstrip("/")


#: Seconds the body of a 2xx is read for when the status alone decides (``status_decides``).
_ACCEPTED_BODY = 1.0


def retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


class Client:
    """One HTTP client for one command run; use it as a context manager.

    ``describe`` turns a failed answer into one line (``503 Service Unavailable: ...``) in
    the service's terms; ``secret`` (or each of several) is masked in every line made from
    an answer; ``max_answer`` is how many bytes of an answer are kept. ``limited`` tells a
    rate limit in the service's terms: the seconds to wait before asking again when a
    failed answer is one (GitHub's 403 with ``X-RateLimit-Remaining: 0``, say), else None;
    a rate limit is waited for as a 429 with that ``Retry-After`` would be.
    """

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        policy: RetryPolicy,
        *,
        describe: Callable[[httpx.Response], str],
        secret: str | Sequence[str | None] | None = None,
        max_answer: int = 64 * 1024,
        limited: Callable[[httpx.Response], float | None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        import httpx

        self.base_url = base_url
        self.policy = policy
        given = [secret] if secret is None or isinstance(secret, str) else secret
        self._secrets = tuple(s for s in given if s)
        self._describe, self._max_answer, self._limited = describe, max_answer, limited
        self._sleep, self._clock, self._jitter = sleep, clock, jitter
        self.renew_budget()
        self._client = httpx.Client(
            base_url=base_url,
            headers={"User-Agent": f"dora/{__version__}", **headers},
            timeout=httpx.Timeout(policy.read_timeout, connect=policy.connect_timeout),
            trust_env=True,  # HTTPS_PROXY, HTTP_PROXY, NO_PROXY
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def renew_budget(self) -> None:
        """Start a fresh retry budget."""
        self._deadline = self._clock() + self.policy.budget

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        status_decides: bool = False,
    ) -> httpx.Response:
        """The first answer that is a success or final; raise ``GaveUp`` or ``OutOfTime``
        when the budget runs out first.

        With ``status_decides`` (a request whose success is all that matters, such as a
        delivery) a 2xx status line is the answer: its body is read only as far as
        ``max_answer`` and the budget allow, and a body that fails or never ends does not
        turn an acceptance into a failure to be sent again."""
        import httpx

        url = f"{self.base_url}{path}"
        attempts = 0
        started = self._clock()
        failed: GaveUp | None = None  # the last failure, reported if the budget ends first
        while True:
            remaining = self._deadline - self._clock()
            if remaining <= 0:
                # a sleep may overshoot the deadline it was measured against: the answer
                # the user needs is then the last failure, not that time ran out
                raise failed or OutOfTime(url)
            attempts += 1
            try:
                response = self._send(
                    method, path, params, content, headers, remaining, status_decides
                )
            except httpx.TimeoutException as exc:
                problem, status, wait = f"timed out ({type(exc).__name__})", None, None
            except httpx.HTTPError as exc:  # connection, protocol, decoding...
                problem, status, wait = self.hide(_transport_problem(exc)), None, None
            else:
                limit = None
                if self._limited is not None and not response.is_success:
                    limit = self._limited(response)
                if response.is_success or (not retryable(response.status_code) and limit is None):
                    log.debug("%s %s attempt %d: %s", method, url, attempts, response.status_code)
                    return response
                status = response.status_code
                problem = self.hide(self._describe(response))
                wait = _retry_after(response)
                if limit is not None:
                    wait = max(wait or 0.0, limit)
            # Retry-After is the least to wait; backing off still applies, so that a
            # server answering "0" again and again is not hammered
            delay = max(wait or 0.0, self._backoff(attempts))
            if self._clock() + delay >= self._deadline:
                log.debug("%s %s attempt %d: %s; giving up", method, url, attempts, problem)
                asked = wait if wait is not None and wait > delay - 1e-9 and wait > 0 else None
                raise GaveUp(attempts, self._clock() - started, problem, status, asked)
            log.debug(
                "%s %s attempt %d: %s; next try in %.1fs", method, url, attempts, problem, delay
            )
            self._sleep(delay)
            failed = GaveUp(attempts, self._clock() - started, problem, status, None)

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        remaining: float,
        status_decides: bool = False,
    ) -> httpx.Response:
        """One request whose answer is read within the budget and kept to ``max_answer``
        bytes: a server that trickles its answer cannot hold the command past its budget.
        With ``status_decides``, a 2xx is returned with what of its body could be read."""
        import httpx

        request = self._client.build_request(
            method,
            path,
            params=params,
            content=content,
            headers=headers,
            timeout=httpx.Timeout(
                min(self.policy.read_timeout, remaining),
                connect=min(self.policy.connect_timeout, remaining),
            ),
        )
        response = self._client.send(request, stream=True)
        accepted = status_decides and response.is_success
        # an acceptance's body is only read for the connection's sake: briefly
        deadline = min(self._deadline, self._clock() + _ACCEPTED_BODY) if accepted else None
        kept, size = [], 0
        try:
            for chunk in response.iter_bytes():
                if size < self._max_answer:
                    kept.append(chunk[: self._max_answer - size])
                size += len(chunk)
                if accepted and size >= self._max_answer:
                    break  # the rest of an acceptance is not worth waiting for
                if self._clock() > (deadline or self._deadline):
                    raise httpx.ReadTimeout(
                        "the answer outlasted the retry budget", request=request
                    )
        except httpx.HTTPError as exc:
            if not accepted:
                raise
            log.debug(
                "%s %s: %s, but its body could not be read (%s); the status decides",
                method,
                request.url,
                response.status_code,
                _transport_problem(exc),
            )
        finally:
            response.close()
        headers_kept = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            response.status_code, headers=headers_kept, content=b"".join(kept), request=request
        )

    def hide(self, text: str) -> str:
        """``text`` without the secret, should a server quote it back."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _backoff(self, attempts: int) -> float:
        ceiling = min(self.policy.max_delay, self.policy.base_delay * 2 ** (attempts - 1))
        return self._jitter(0, ceiling)


def status_line(response: httpx.Response, detail: str) -> str:
    """``503 Service Unavailable: <detail>``, or without the detail when there is none."""
    text = f"{response.status_code} {response.reason_phrase}".strip()
    return f"{text}: {detail}" if detail else text


def json_body(response: httpx.Response) -> Any:
    """The answer's JSON, or None when it is not JSON (or nested deeper than it can be read)."""
    try:
        return response.json()
    except (ValueError, RecursionError):
        return None


def one_line(text: str, limit: int = 300) -> str:
    """Server text as one line: no control characters, at most ``limit`` long."""
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _transport_problem(exc: Exception) -> str:
    name = type(exc).__name__
    detail = " ".join(str(exc).split())
    return f"{name}: {detail}" if detail else name


def until_reset(
    response: httpx.Response, remaining: str, reset: str, *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds until a spent rate limit resets, from the header ``remaining`` saying 0 and
    the header ``reset`` holding the moment it resets in Unix seconds (GitHub's
    ``X-RateLimit-*``, GitLab's ``RateLimit-*``); None when the answer says no such thing."""
    if response.headers.get(remaining, "").strip() != "0":
        return None
    try:
        moment = float(response.headers.get(reset, ""))
    except ValueError:
        return None
    return max(0.0, moment - now())


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
