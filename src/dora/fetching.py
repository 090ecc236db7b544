"""What the fetchers of history from other services share (``dora fetch github``,
``gitlab``, ``opsgenie``, ``incident-io``).

* ``Api`` names a service's API: its token variable, the variable that replaces its
  address (an enterprise server, a region, a proxy, a test), and how it takes the token.
* ``ApiClient`` asks it with the retries, budget, proxies and masking of every dora client
  (``dora.backends.http``), follows ``Link: <...>; rel="next"`` pages on the same origin
  only (the token never goes elsewhere), and turns each refusal into one line that says
  what to check.
* ``Fetched`` is what a fetch found: records as ``dora import`` reads them (so that
  ``--dry-run`` prints exactly what would be stored, and each goes through the checks of
  every other way in), with the requests it took and the warnings it has.
* ``Names`` renames a source's services, environments or teams (``--service-map``) and
  remembers the names no mapping named, to warn about them.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from dora import text
from dora.backends import http
from dora.errors import DoraError, UsageError

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"[!-~]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ID_PART = re.compile(r"[A-Za-z0-9._:-]+")
_NEXT = re.compile(r'<([^>]*)>\s*;[^,]*\brel="?next"?', re.IGNORECASE)


class FetchError(DoraError):
    """A service refused or failed a request, or answered with something unexpected;
    ``status`` is the HTTP status of a refusal (None: no answer, or not one of those)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Api:
    """A service's API as dora asks it."""

    name: str  # GitHub
    auth_variable: str  # GITHUB_TOKEN
    url_variable: str  # GITHUB_API_URL
    default_url: str  # https://api.github.com
    #: what the token is, for the error saying it is missing
    auth_is: str
    #: the headers that carry the token
    auth: Callable[[str], dict[str, str]]
    #: the headers every request carries besides
    headers: Mapping[str, str] = field(default_factory=dict)
    #: the path under the URL where the API's own paths start (GitLab's /api/v4)
    root: str = ""


@dataclass(frozen=True)
class Account:
    base_url: str
    token: str = field(repr=False)


def account(api: Api, env: Mapping[str, str]) -> Account:
    """Where to ask and with which token, from the API's two variables."""
    token = env.get(api.auth_variable, "").strip()
    if not token:
        raise UsageError(f"{api.auth_variable} is not set: give it {api.auth_is}")
    if not _TOKEN.fullmatch(token):
        raise UsageError(f"{api.auth_variable}: a token is printable ASCII without spaces")
    base = api.default_url
    if given := env.get(api.url_variable, "").strip():
        base = http.check_base_url(given, api.url_variable)
    return Account(base + api.root, token)


@dataclass
class Fetched:
    """What a fetch found: records in ``dora import``'s form, the requests it took, and
    warnings (names left unmapped, events the source holds but dora cannot use)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    warnings: list[str] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(record["type"] == kind for record in self.records)


@dataclass
class Deployed:
    """A deployment of a source, as its commits are found: its SHA, its environment (the
    source's name: a history is one repository's or project's environment), when it
    finished, and its record (None: the one before the window, not fetched)."""

    sha: str | None
    env: str
    finished: datetime
    record: dict[str, Any] | None


def ship(
    deployments: list[Deployed], compare: Callable[[str, str], list[dict[str, Any]] | None]
) -> None:
    """Give each fetched deployment the commits it shipped since the one before it in its
    environment, by finish: none for the same SHA again, else ``compare(previous, sha)``
    (None: unknown, and the record gets no commits, so a stored deployment keeps its
    own). The first of each environment, with none before it, gets no commits either."""
    history: dict[str, list[Deployed]] = {}
    for deployment in deployments:
        history.setdefault(deployment.env, []).append(deployment)
    for line in history.values():
        line.sort(key=lambda d: (d.finished, d.record["id"] if d.record else ""))
        for previous, deployment in itertools.pairwise(line):
            if deployment.record is None or not deployment.sha:
                continue
            if not previous.sha or previous.sha == deployment.sha:
                deployment.record["commits"] = []
                continue
            commits = compare(previous.sha, deployment.sha)
            if commits is not None:
                deployment.record["commits"] = commits


class ApiClient:
    """One HTTP client for one fetch; use it as a context manager.

    Each request gets a fresh retry budget, so that a long history can be read while a
    failing API still stops the command within one budget. ``describe`` makes a failed
    answer one line in the service's words; ``limited`` tells its rate-limit answers
    (``http.Client``)."""

    def __init__(
        self,
        api: Api,
        where: Account,
        *,
        describe: Callable[[httpx.Response], str],
        limited: Callable[[httpx.Response], float | None] | None = None,
        policy: http.RetryPolicy | None = None,
        max_answer: int = 32 * 1024 * 1024,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api, self.account = api, where
        self.policy = policy or http.RetryPolicy()
        self.requests = 0
        self._describe = describe
        self._origin = _origin(where.base_url)
        self._http = http.Client(
            where.base_url,
            {**api.headers, **api.auth(where.token)},
            self.policy,
            describe=describe,
            secret=where.token,
            max_answer=max_answer,
            limited=limited,
            sleep=sleep,
            clock=clock,
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.close()

    def hide(self, value: str) -> str:
        return self._http.hide(value)

    def get(
        self, path: str, params: Mapping[str, str] | None = None, *, what: str, check: str
    ) -> tuple[Any, httpx.Response]:
        """The JSON answer to ``GET path`` (a path under the base URL, or a whole URL on its
        origin: a next page), and the answer itself. ``what`` says what is asked (``list
        the deployments of acme/api``) and ``check`` what to check when it is not found (``--repo``)
        in errors."""
        url = self._own(path) if "://" in path else f"{self.account.base_url}{path}"
        self._http.renew_budget()
        self.requests += 1
        try:
            response = self._http.request(
                "GET", url.removeprefix(self.account.base_url), params=params
            )
        except http.OutOfTime:
            raise FetchError(
                f"no time left to ask {self.api.name} to {what} "
                f"(retry budget of {self.policy.budget:g}s used up)"
            ) from None
        except http.GaveUp as exc:
            shown = self.hide(url.split("?")[0])
            if exc.status is None:  # never an answer: the network, a proxy or the server
                message = f"could not reach {shown} after {exc.tries}: {exc.problem}"
            else:
                message = f"{self.api.name} did not {what} after {exc.tries}: {exc.problem}"
            if exc.asked is not None:
                message += (
                    f"; it asked to wait {exc.asked:.0f}s, past the retry budget "
                    f"({self.policy.budget:g}s: DORA_RETRY_BUDGET, at most 3600)"
                )
            raise FetchError(message) from None
        if not response.is_success:
            raise FetchError(self._refused(response, what, check), response.status_code)
        data = http.json_body(response)
        if data is None:
            kind = response.headers.get("Content-Type", "no content type")
            raise self.unexpected(what, f"not JSON but {http.one_line(kind, 60)}")
        return data, response

    def _own(self, url: str) -> str:
        """A next page's URL on the configured server: as given when it is that server's,
        else its path and query there. The token goes to no other server (a proxy in
        between, or an answer naming a host of its own, cannot take it elsewhere)."""
        if _origin(url) == self._origin:
            return url
        parts = urlsplit(url)
        own = urlsplit(self.account.base_url)
        path = parts.path
        if own.path and not path.startswith(own.path):
            path = own.path.rstrip("/") + path
        moved = f"{self._origin}{path}" + (f"?{parts.query}" if parts.query else "")
        log.debug("a next page on another server: asking %s instead", self.hide(moved))
        return moved

    def pages(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        what: str,
        check: str,
        items: Callable[[Any], list[Any] | None] = lambda data: data,
    ) -> Iterator[list[Any]]:
        """The items of each page of a list that ``Link`` headers page through (GitHub's
        and GitLab's), ``items`` finding them in an answer (None: it is not a page)."""
        url: str | None = path
        while url is not None:
            data, response = self.get(url, params, what=what, check=check)
            found = items(data)
            if not isinstance(found, list):
                raise self.unexpected(what, "not a list")
            yield found
            url, params = next_link(response), None  # the next link holds the query

    def unexpected(self, what: str, problem: str) -> FetchError:
        return FetchError(
            f"{self.api.name} did not answer as its API does when asked to {what} "
            f"({problem}); check {self.api.url_variable}"
        )

    def _refused(self, response: httpx.Response, what: str, check: str) -> str:
        status = response.status_code
        problem = self.hide(self._describe(response))
        name, token = self.api.name, self.api.auth_variable
        if status == 401:
            return f"{name} refused the token ({problem}); check {token}"
        if status == 403:
            return (
                f"{name} did not let the token {what} ({problem}); give {token} a token "
                "that may read it"
            )
        if response.is_redirect:
            target = self.hide(response.headers.get("Location", "elsewhere"))
            return (
                f"{name} moved ({problem}, to {http.one_line(target, 120)}); set "
                f"{self.api.url_variable} to where it points"
            )
        if status == 404:
            return (
                f"{name} found nothing when asked to {what} ({problem}); check {check} "
                f"and that {token} may read it"
            )
        return f"{name} refused to {what} ({problem})"


def next_link(response: httpx.Response) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header (RFC 8288), if there is one."""
    for value in response.headers.get_list("Link"):
        if found := _NEXT.search(value):
            return found[1].strip()
    return None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.netloc or '').lower()}"


def event_id(prefix: str, *parts: str | int) -> str:
    """``prefix`` and the source's own ids joined by ``-`` (``github-deployment-1234``),
    padded with ``_`` to the 16 characters an id needs at least: the same event fetched
    again gets the same id, so a second fetch updates it."""
    shown = [str(part) for part in parts]
    for part in shown:
        if not _ID_PART.fullmatch(part):
            raise ValueError(f"not an id part: {part!r}")
    return "-".join([prefix, *shown]).ljust(16, "_")


def line(value: Any) -> Any:
    """Text as one line without hidden characters (``dora.text.plain``), None when empty;
    anything else as it is, for the checks to refuse."""
    if not isinstance(value, str):
        return value
    return text.plain(" ".join(_CONTROL.sub(" ", value).split())) or None


def commit(sha: Any, committed_at: Any, message: Any) -> dict[str, Any]:
    """A commit as a record holds it: its SHA, when it landed, its subject (the message's
    first line, made plain and cut as ``dora deployment`` cuts it) and the commit it
    reverts."""
    from dora.failures import reverted_sha
    from dora.gitmeta import SUBJECT

    found: dict[str, Any] = {"sha": sha, "committed_at": committed_at}
    if isinstance(message, str):
        lines = message.splitlines()  # any line break: \r alone too
        subject = line(lines[0]) if lines else None
        if isinstance(subject, str):
            found["subject"] = subject[:SUBJECT]
        if reverts := reverted_sha("\n".join(lines[1:])):
            found["reverts"] = reverts
    return found


def uncompared(source: str, base: str, head: str, full: str, exc: FetchError) -> str:
    """The warning for a compare that failed (not for want of access): that deployment
    is stored without its commits."""
    why = (
        "a commit is gone, or the history was rewritten"
        if exc.status in (404, 422)
        else exc.message
    )
    return (
        f"{source} cannot compare {base[:12]}...{head[:12]} of {full} ({why}): that "
        "deployment has no lead time"
    )


def moment(value: Any) -> datetime | None:
    """A source's ISO 8601 time (UTC when it names no zone), or None when it is none."""
    from dora import timeparse

    if not isinstance(value, str) or timeparse.is_relative(value) or "-" not in value:
        return None
    try:
        return timeparse.parse_timestamp(value, naive_utc=True)
    except ValueError:
        return None


def iso(moment: datetime) -> str:
    from dora import timeparse

    return timeparse.format_iso(moment)


class Names:
    """A source's names renamed to dora's (``--service-map 'FROM=TO'``); a name no mapping
    names keeps its own, and is remembered to be warned about."""

    def __init__(self, mapping: Mapping[str, str], *, flag: str, source: str, what: str) -> None:
        self.mapping, self.flag, self.source, self.what = dict(mapping), flag, source, what
        self.unmapped: dict[str, int] = {}
        self.seen: set[str] = set()

    def __call__(self, name: str) -> str:
        self.seen.add(name)
        if name in self.mapping:
            return self.mapping[name]
        if self.mapping:
            self.unmapped[name] = self.unmapped.get(name, 0) + 1
        return name

    def warnings(self) -> list[str]:
        """One for each name left unmapped (when there is a map at all), and one for each
        mapping that named nothing fetched: a typo, or a name quiet in the window."""
        found = [
            f"{self.source} {self.what} '{name}' is not in {self.flag}; its {n:,} "
            f"event{'s' * (n != 1)} keep{'s' * (n == 1)} that name"
            for name, n in sorted(self.unmapped.items())
        ]
        if self.seen:
            found += [
                f"{self.flag}: nothing fetched has {self.source} {self.what} '{name}'"
                for name in sorted(set(self.mapping) - self.seen)
            ]
        return found


def name_map(flag: str, values: list[str], form: str) -> dict[str, str]:
    """``FROM=TO`` values as {FROM: TO}, split at the last '=' (a source's name may hold
    one); ``form`` names the two sides in the error (``PagerDuty name=service``)."""
    mapping: dict[str, str] = {}
    for value in values:
        name, equals, renamed = (part.strip() for part in value.rpartition("="))
        if not equals or not name or not renamed:
            raise UsageError(f"{flag}: '{value}' is not '{form}'")
        if mapping.get(name, renamed) != renamed:
            raise UsageError(f"{flag}: '{name}' is mapped twice")
        mapping[name] = renamed
    return mapping
