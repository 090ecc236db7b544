"""Incidents from PagerDuty's REST API v2, as dora incidents.

``GET {base}/incidents`` with ``since``, ``until`` and ``time_zone=UTC``, paged with
``offset`` and ``limit`` (100) until ``more`` is false; the token goes in ``Authorization:
Token token=...`` and the API version in ``Accept: application/vnd.pagerduty+json;version=2``.
``base`` is ``PAGERDUTY_API_URL`` when set, otherwise ``https://api.pagerduty.com``.

PagerDuty answers for at most six months per request, and its classic paging stops at the
10,000th result (offset + limit may not pass 10,000). So a window is asked for in chunks of
at most 180 days, and a chunk holding more than 10,000 incidents is split in half until each
part fits: nothing is dropped. Failures are retried as for the Datadog backend
(``dora.backends.http``), each request with its own retry budget.

Each PagerDuty incident becomes an ``Incident`` built and checked like the commands' own:

============================  ====================================================
PagerDuty                     dora
============================  ====================================================
``id``                        ``id``: ``pagerduty-<ID>``, padded with ``_`` to 16
``created_at``                ``started_at``
``resolved_at`` (or           ``finished_at``, when the status is resolved;
``last_status_change_at``)    triggered and acknowledged incidents stay open
``service.summary``           ``services``, renamed through the service map
``priority.summary``,         ``severity``
else ``urgency``
``title``                     ``name``
``teams[0].summary``          ``team``, when asked for; else the team given
(none)                        ``env``: the environment given
============================  ====================================================

Text is made one line (PagerDuty titles may hold line breaks). An incident that fails the
checks (created in the future, say) is skipped with a warning. ``case_clashes`` finds the
services whose name differs only in case from one dora knows (``Web`` beside ``web``),
which would be counted apart.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from dora import timeparse
from dora.backends import http
from dora.errors import DoraError, InvalidEvent, UsageError
from dora.fetching import line as _line

if TYPE_CHECKING:
    import httpx

    from dora.events import Incident
    from dora.store import Store

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.pagerduty.com"
TOKEN_VARIABLE = "PAGERDUTY_TOKEN"  # noqa: S105 - the name of a variable, not a token
API_URL_VARIABLE = "PAGERDUTY_API_URL"
ACCEPT = "application/vnd.pagerduty+json;version=2"
#: The longest window one request may ask for (PagerDuty's limit is six months).
CHUNK = timedelta(days=180)
PAGE_SIZE = 100
#: Classic paging answers no result past this one (offset + limit <= 10,000).
MAX_RESULTS = 10_000
ID_PREFIX = "pagerduty-"

_TOKEN = re.compile(r"[!-~]+")
_MAX_ANSWER = 32 * 1024 * 1024  # a page of 100 incidents is a few hundred KB


class PagerDutyError(DoraError):
    """PagerDuty refused or failed a request, or answered with something unexpected."""


@dataclass(frozen=True)
class Account:
    base_url: str
    token: str = field(repr=False)


def account(env: Mapping[str, str]) -> Account:
    """The API to ask and the token to ask with, from ``PAGERDUTY_TOKEN`` and
    ``PAGERDUTY_API_URL``."""
    token = env.get(TOKEN_VARIABLE, "").strip()
    if not token:
        raise UsageError(f"{TOKEN_VARIABLE} is not set: give it a PagerDuty REST API key")
    if not _TOKEN.fullmatch(token):
        raise UsageError(f"{TOKEN_VARIABLE}: a token is printable ASCII without spaces")
    if api_url := env.get(API_URL_VARIABLE, "").strip():
        return Account(http.check_base_url(api_url, API_URL_VARIABLE), token)
    return Account(DEFAULT_API_URL, token)


@dataclass
class Page:
    incidents: list[dict[str, Any]]
    more: bool
    total: int | None  # only when asked for


class PagerDutyClient:
    """One HTTP client for one command run; use it as a context manager.

    Each request gets a fresh retry budget, so that a long history can be read while a
    failing API still stops the command within one budget.
    """

    def __init__(
        self,
        where: Account,
        policy: http.RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account = where
        self.policy = policy or http.RetryPolicy()
        self.requests = 0
        self._http = http.Client(
            where.base_url,
            {"Accept": ACCEPT, "Authorization": f"Token token={where.token}"},
            self.policy,
            describe=_answer,
            secret=where.token,
            max_answer=_MAX_ANSWER,
            sleep=sleep,
            clock=clock,
        )

    def __enter__(self) -> PagerDutyClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.close()

    @property
    def url(self) -> str:
        return f"{self.account.base_url}/incidents"

    def incidents(
        self, since: datetime, until: datetime, offset: int = 0, *, count: bool = False
    ) -> Page:
        """One page of the incidents created in [since, until); with ``count``, PagerDuty
        is asked for their ``total`` too."""
        params = {
            "since": timeparse.format_iso(since),
            "until": timeparse.format_iso(until),
            "time_zone": "UTC",
            "sort_by": "created_at:asc",
            "limit": str(PAGE_SIZE),
            "offset": str(offset),
        }
        if count:
            params["total"] = "true"
        self._http.renew_budget()
        self.requests += 1
        try:
            response = self._http.request("GET", "/incidents", params=params)
        except http.OutOfTime:
            raise PagerDutyError(
                f"no time left to ask {self.url} for incidents "
                f"(retry budget of {self.policy.budget:g}s used up)"
            ) from None
        except http.GaveUp as exc:
            if exc.status is None:  # never an answer: the network, a proxy or the server
                message = f"could not reach {self.url} after {exc.tries}: {exc.problem}"
            else:
                message = f"PagerDuty did not list the incidents after {exc.tries}: {exc.problem}"
            if exc.asked is not None:
                message += f"; it asked to wait {exc.asked:g}s, past the retry budget"
            raise PagerDutyError(message) from None
        if not response.is_success:
            raise PagerDutyError(self._refused(response))
        return self._page(response)

    def _refused(self, response: httpx.Response) -> str:
        status = response.status_code
        problem = self._http.hide(_answer(response))
        if status == 401:
            return (
                f"PagerDuty refused the token ({status} {response.reason_phrase}); "
                f"check {TOKEN_VARIABLE}"
            )
        if status == 403:
            return (
                f"PagerDuty did not let the token list incidents ({problem}); "
                f"give {TOKEN_VARIABLE} a key that may read them"
            )
        if response.is_redirect:
            target = self._http.hide(response.headers.get("Location", "elsewhere"))
            return (
                f"{self.url} redirects to {target} ({problem}); "
                f"set {API_URL_VARIABLE} to where it points"
            )
        if status == 404:
            return (
                f"no PagerDuty API at {self.account.base_url} ({problem}); check {API_URL_VARIABLE}"
            )
        return f"PagerDuty refused to list the incidents ({problem})"

    def _page(self, response: httpx.Response) -> Page:
        """The answer as a page, or an error saying it is not one."""

        def unexpected(what: str) -> PagerDutyError:
            return PagerDutyError(
                f"the answer of {self.url} is not a page of PagerDuty incidents ({what}); "
                f"check {API_URL_VARIABLE}"
            )

        data = http.json_body(response)
        if data is None:
            return_type = response.headers.get("Content-Type", "no content type")
            raise unexpected(f"not JSON but {http.one_line(return_type, 60)}")
        if not isinstance(data, dict) or not isinstance(data.get("incidents"), list):
            raise unexpected("no 'incidents' list")
        more = data.get("more", False)
        if not isinstance(more, bool):
            raise unexpected("'more' is not true or false")
        total = data.get("total")
        incidents = data["incidents"]
        for incident in incidents:
            if (
                not isinstance(incident, dict)
                or not isinstance(incident.get("id"), str)
                or not incident["id"]
            ):
                raise unexpected("an incident without an id")
        return Page(
            incidents,
            more,
            total if isinstance(total, int) and not isinstance(total, bool) else None,
        )


def _answer(response: httpx.Response) -> str:
    """``400 Bad Request: Invalid Input Provided: <errors>``, on one line, from PagerDuty's
    ``{"error": {"message": ..., "code": ..., "errors": [...]}}``."""
    data = http.json_body(response)
    if data is None:
        return http.status_line(response, http.one_line(response.text))
    error = data.get("error") if isinstance(data, dict) else None
    parts = []
    if isinstance(error, dict):
        if error.get("message"):
            parts.append(str(error["message"]))
        errors = error.get("errors")
        if isinstance(errors, list) and errors:
            parts.append("; ".join(str(item) for item in errors))
    return http.status_line(response, http.one_line(": ".join(parts)))


def fetch(
    client: PagerDutyClient,
    since: datetime,
    until: datetime,
    *,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Every incident created in [since, until), each once (a later answer wins), in the
    order PagerDuty gave them. ``progress(n)`` tells how many have come so far."""
    found: dict[str, dict[str, Any]] = {}

    def keep(incidents: Iterable[dict[str, Any]]) -> None:
        for incident in incidents:
            found[incident["id"]] = incident
        if progress:
            progress(len(found))

    start, end = _whole_second(since), _whole_second(until, up=True)
    while start < end:
        stop = min(start + CHUNK, end)
        _fetch_range(client, start, stop, keep)
        start = stop
    return list(found.values())


def _fetch_range(
    client: PagerDutyClient,
    since: datetime,
    until: datetime,
    keep: Callable[[Iterable[dict[str, Any]]], None],
) -> None:
    offset = 0
    while True:
        page = client.incidents(since, until, offset, count=offset == 0)
        if offset == 0 and page.total is not None and page.total > MAX_RESULTS:
            _fetch_halves(client, since, until, keep)
            return
        keep(page.incidents)
        if not page.more:
            return
        offset += PAGE_SIZE
        if offset + PAGE_SIZE > MAX_RESULTS:  # PagerDuty would refuse the next page
            _fetch_halves(client, since, until, keep)
            return


def _fetch_halves(
    client: PagerDutyClient,
    since: datetime,
    until: datetime,
    keep: Callable[[Iterable[dict[str, Any]]], None],
) -> None:
    middle = _whole_second(since + (until - since) / 2)
    if not since < middle < until:
        raise PagerDutyError(
            f"PagerDuty holds more than {MAX_RESULTS:,} incidents created from "
            f"{timeparse.format_iso(since)} to {timeparse.format_iso(until)}, more than "
            "it can list"
        )
    log.debug(
        "more than %d incidents from %s to %s: asking for each half",
        MAX_RESULTS,
        timeparse.format_iso(since),
        timeparse.format_iso(until),
    )
    _fetch_range(client, since, middle, keep)
    _fetch_range(client, middle, until, keep)


def _whole_second(moment: datetime, *, up: bool = False) -> datetime:
    down = moment.replace(microsecond=0)
    return down + timedelta(seconds=1) if up and down < moment else down


@dataclass
class Imported:
    """What an import found: the incidents to save, how many PagerDuty listed in how many
    requests, what to warn about (skipped incidents, services left unmapped), and the
    services the incidents name, each with the PagerDuty services recorded under it."""

    incidents: list[Incident]
    fetched: int
    requests: int
    warnings: list[str]
    services: dict[str, set[str]] = field(default_factory=dict)


def import_incidents(
    client: PagerDutyClient,
    since: datetime,
    until: datetime,
    *,
    service_map: Mapping[str, str] | None = None,
    team_from_pagerduty: bool = False,
    env: str | None = None,
    team: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Imported:
    """The incidents created in [since, until), as dora incidents, with ``env`` and ``team``
    set on each (``team`` where PagerDuty gives none, with ``team_from_pagerduty``)."""
    service_map = service_map or {}
    raw = fetch(client, since, until, progress=progress)
    incidents, warnings = convert(
        raw,
        service_map=service_map,
        team_from_pagerduty=team_from_pagerduty,
        env=env,
        team=team,
    )
    kept = {service for incident in incidents for service in incident.services}
    services: dict[str, set[str]] = {}
    for item in raw:
        name = _summary(item.get("service"))
        if name is not None and (recorded := service_map.get(name, name)) in kept:
            services.setdefault(recorded, set()).add(name)
    return Imported(incidents, len(raw), client.requests, warnings, services)


def convert(
    raw: Sequence[dict[str, Any]],
    *,
    service_map: Mapping[str, str],
    team_from_pagerduty: bool = False,
    env: str | None = None,
    team: str | None = None,
) -> tuple[list[Incident], list[str]]:
    """PagerDuty incidents as dora incidents, and warnings: one for each incident that fails
    the checks (it is skipped), and, with a service map, one for each service it leaves
    unmapped."""
    from dora.events import Incident, build

    incidents: list[Incident] = []
    warnings: list[str] = []
    unmapped: dict[str, int] = {}
    seen: set[str] = set()
    for item in raw:
        service = _summary(item.get("service"))
        if service is not None:
            seen.add(service)
        if service_map and service is not None and service not in service_map:
            unmapped[service] = unmapped.get(service, 0) + 1
        try:
            fields = to_event(item, service_map, team_from_pagerduty, env=env, team=team)
            incidents.append(build(Incident, fields))
        except InvalidEvent as exc:
            warnings.append(f"skipped {_name(item)}: {exc.message}")
    for name, n in sorted(unmapped.items()):
        warnings.append(
            f"PagerDuty service '{name}' is not in the service map; its "
            f"{n:,} incident{'s' * (n != 1)} keep{'s' * (n == 1)} that name"
        )
    if raw:  # a name no incident has: a typo, or a service quiet in this window
        for name in sorted(set(service_map) - seen):
            warnings.append(
                f"--service-map: no PagerDuty incident in the window has service '{name}'"
            )
    return incidents, warnings


def to_event(
    incident: Mapping[str, Any],
    service_map: Mapping[str, str],
    team_from_pagerduty: bool,
    *,
    env: str | None = None,
    team: str | None = None,
) -> dict[str, Any]:
    """The fields of the dora incident for a PagerDuty incident, to be checked by
    ``events.build``. ``env`` and ``team`` are set as given; with ``team_from_pagerduty``,
    the incident's first PagerDuty team comes before ``team``."""
    finished_at = None
    if incident.get("status") == "resolved":
        finished_at = incident.get("resolved_at") or incident.get("last_status_change_at")
        if finished_at is None:
            raise InvalidEvent("finished_at", "resolved, but without resolved_at")
    service = _summary(incident.get("service"))
    teams = incident.get("teams")
    if team_from_pagerduty and isinstance(teams, list) and teams:
        team = _summary(teams[0]) or team
    return {
        "id": event_id(str(incident["id"])),
        "started_at": incident.get("created_at"),
        "finished_at": finished_at,
        "services": [service_map.get(service, service)] if service is not None else [],
        "team": team,
        "env": env,
        "name": _line(incident.get("title")),
        "severity": _summary(incident.get("priority")) or _line(incident.get("urgency")),
    }


def recorded_services(store: Store) -> set[str]:
    """The services the store knows from elsewhere than PagerDuty: those of deployments,
    and of incidents not imported from PagerDuty (those are what an import rewrites, so a
    second import finds what the first found)."""
    found = store.aggregate(
        "SELECT DISTINCT service FROM deployments UNION "
        "SELECT DISTINCT service FROM incident_services WHERE substr(incident_id, 1, ?) != ?",
        (len(ID_PREFIX), ID_PREFIX),
    )
    return {str(name) for (name,) in found}


def case_clashes(services: Mapping[str, Collection[str]], recorded: Collection[str]) -> list[str]:
    """A warning for each of ``services`` (a dora service name, and the PagerDuty services
    recorded under it) that matches none of the ``recorded`` services but one that differs
    only in case: dora counts the two apart. Each says which ``--service-map`` merges them.
    """
    known = set(recorded)
    folded: dict[str, list[str]] = {}
    for name in known:
        folded.setdefault(name.casefold(), []).append(name)
    warnings = []
    for name in sorted(services):
        others = sorted(folded.get(name.casefold(), ()))
        if name in known or not others:
            continue
        sources = sorted(services[name])
        who = f"PagerDuty service '{name}'"
        if sources != [name]:
            who = f"service '{name}' (PagerDuty's {_listed(sources)})"
        recorded_as = "recorded service" + "s" * (len(others) > 1)
        flags = " ".join(f"--service-map {_quoted(f'{pd}={others[0]}')}" for pd in sources)
        warnings.append(
            f"{who} differs only in case from the {recorded_as} {_listed(others)}, "
            f"so 'dora metrics' counts them apart; import again with {flags} to merge them"
        )
    return warnings


def _listed(names: Sequence[str]) -> str:
    """``'a'``, ``'a' and 'b'``, ``'a', 'b' and 'c'``."""
    quoted = [f"'{name}'" for name in names]
    return " and ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted)


def _quoted(text: str) -> str:
    """``text`` in double quotes, as a shell reads it back."""
    return '"' + re.sub(r'([\\"$`])', r"\\\1", text) + '"'


def event_id(pagerduty_id: str) -> str:
    """``pagerduty-<ID>``, padded with ``_`` to the 16 characters an event id needs at least
    (PagerDuty ids are upper-case letters and digits, so the padding cannot be mistaken)."""
    return f"{ID_PREFIX}{pagerduty_id}".ljust(16, "_")


def _summary(reference: Any) -> str | None:
    """The ``summary`` of a PagerDuty reference (``{"id", "type", "summary"}``), one line."""
    if not isinstance(reference, dict):
        return None
    value = _line(reference.get("summary"))
    return value if isinstance(value, str) else None


def _name(incident: Mapping[str, Any]) -> str:
    number = incident.get("incident_number")
    shown = f" #{number}" if isinstance(number, int) else ""
    return f"PagerDuty incident{shown} {incident.get('id')}"
