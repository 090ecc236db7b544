"""Incidents from Opsgenie's Incident API, as ``dora import`` records.

The API key goes in ``Authorization: GenieKey ...``; ``OPSGENIE_API_URL`` replaces
``https://api.opsgenie.com`` (an EU account's ``https://api.eu.opsgenie.com``, a proxy, a
test). ``GET /v1/incidents`` needs a search query; its range syntax for ``createdAt`` is not
documented exactly, so the query names the statuses only (``status:open OR status:resolved
OR status:closed``), newest first, 100 to a page, following ``paging.next`` (on the same
origin only) and stopping at the first incident created before the window: the window
[since, until) is kept exactly here. Each impacted service's name is asked for once
(``GET /v1/services/{id}``); a service Opsgenie no longer has keeps its id as its name, with
a warning. A 429 is waited for as every dora client waits (its ``Retry-After`` when there
is one, else backing off) within the retry budget.

=========================================  ============================================
Opsgenie                                   dora
=========================================  ============================================
``id``                                     ``id``: ``opsgenie-<ID>``
``createdAt``                              ``started_at``
``impactEndDate`` when resolved or closed, ``finished_at`` (open: none)
else ``updatedAt``
``message``                                ``name``
``priority`` (P1 to P5)                    ``severity``
``impactedServices``' names                ``services``, renamed through ``--service-map``
(none)                                     ``env`` and ``team``: those given
=========================================  ============================================

``updatedAt`` is an approximation of when a resolved incident ended: a later change (a
note, a tag, closing a resolved incident) moves it. An incident with no impacted service
gets none: it needs ``--team``, or dora's checks skip it with a warning.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dora import fetching
from dora.backends import http
from dora.fetching import ApiClient, Fetched, FetchError, Names

if TYPE_CHECKING:
    import httpx

API = fetching.Api(
    name="Opsgenie",
    auth_variable="OPSGENIE_API_KEY",
    url_variable="OPSGENIE_API_URL",
    default_url="https://api.opsgenie.com",
    auth_is="an Opsgenie API key that may read incidents and services",
    auth=lambda key: {"Authorization": f"GenieKey {key}"},
)
PAGE = "100"
#: Every status an incident can have: the list API needs a query, and this one is plain.
QUERY = "status:open OR status:resolved OR status:closed"
_ENDED = ("resolved", "closed")
_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def describe(response: httpx.Response) -> str:
    """``404 Not Found: Service not found``, from Opsgenie's ``{"message", "took",
    "requestId"}``."""
    data = http.json_body(response)
    message = data.get("message") if isinstance(data, dict) else None
    detail = str(message) if message else response.text
    return http.status_line(response, http.one_line(detail))


def client(env: Mapping[str, str], **kwargs: Any) -> ApiClient:
    return ApiClient(API, fetching.account(API, env), describe=describe, **kwargs)


@dataclass(frozen=True)
class Options:
    """What to fetch: the incidents created in [since, until)."""

    since: datetime
    until: datetime
    service_map: Mapping[str, str] = field(default_factory=dict)  # Opsgenie name -> service
    env: str | None = None
    team: str | None = None


def fetch(
    client: ApiClient, options: Options, *, progress: Callable[[int], None] | None = None
) -> Fetched:
    """The incidents created in the window, as records, newest first."""
    return _Reader(client, options, progress).read()


class _Reader:
    def __init__(
        self, client: ApiClient, options: Options, progress: Callable[[int], None] | None
    ) -> None:
        self.client, self.options, self.progress = client, options, progress
        self.fetched = Fetched()
        self.names = Names(
            options.service_map, flag="--service-map", source="Opsgenie", what="service"
        )
        self.services: dict[str, str] = {}  # id -> name

    def read(self) -> Fetched:
        what = "list the incidents"
        found: dict[str, dict[str, Any]] = {}  # a page shifted by a new incident repeats one
        params: dict[str, str] | None = {
            "query": QUERY,
            "offset": "0",
            "limit": PAGE,
            "sort": "createdAt",
            "order": "desc",
        }
        url: str | None = "/v1/incidents"
        while url is not None:
            data, _ = self.client.get(url, params, what=what, check=API.url_variable)
            listed = data.get("data") if isinstance(data, dict) else None
            if not isinstance(listed, list):
                raise self.client.unexpected(what, "no data list")
            past = False
            for item in listed:
                created = _created(item, what, self.client)
                if created < self.options.since:
                    past = True  # newest first: the rest are older still
                    continue
                if created >= self.options.until or item["id"] in found:
                    continue
                found[item["id"]] = self._record(item)
                if self.progress:
                    self.progress(len(found))
            following = None if past or not listed else _next(data, what, self.client)
            if following == url:
                raise self.client.unexpected(what, "paging.next is the page itself")
            url, params = following, None
        self.fetched.records = list(found.values())
        self.fetched.warnings += self.names.warnings()
        self.fetched.requests = self.client.requests
        return self.fetched

    def _record(self, item: dict[str, Any]) -> dict[str, Any]:
        finished = None
        if item.get("status") in _ENDED:
            finished = item.get("impactEndDate") or item.get("updatedAt")
        impacted = item.get("impactedServices")
        services = [
            self.names(self._service(ident))
            for ident in (impacted if isinstance(impacted, list) else [])
            if isinstance(ident, str) and ident
        ]
        record = {
            "type": "incident",
            "id": fetching.event_id("opsgenie", item["id"]),
            "services": services,
            "env": self.options.env,
            "team": self.options.team,
            "name": fetching.line(item.get("message")),
            "severity": fetching.line(item.get("priority")),
            "started_at": item.get("createdAt"),
            "finished_at": finished,
        }
        return {key: value for key, value in record.items() if value is not None}

    def _service(self, ident: str) -> str:
        """The service's name, asked for once; its id when Opsgenie no longer has it."""
        if ident in self.services:
            return self.services[ident]
        what = f"read the service {ident}"
        try:
            data, _ = self.client.get(
                f"/v1/services/{quote(ident, safe='')}", what=what, check="the service"
            )
        except FetchError as exc:
            if exc.status != 404:
                raise
            self.fetched.warnings.append(
                f"Opsgenie has no service {ident} (deleted?): its incidents name it by its id"
            )
            self.services[ident] = ident
            return ident
        about = data.get("data") if isinstance(data, dict) else None
        name = fetching.line(about.get("name")) if isinstance(about, dict) else None
        if not isinstance(name, str):
            raise self.client.unexpected(what, "no name")
        self.services[ident] = name
        return name


def _created(item: Any, what: str, client: ApiClient) -> datetime:
    ident = item.get("id") if isinstance(item, dict) else None
    if not isinstance(ident, str) or not _ID.fullmatch(ident):
        raise client.unexpected(what, "an incident without an id")
    created = fetching.moment(item.get("createdAt"))
    if created is None:
        raise client.unexpected(what, "createdAt is not a time")
    return created


def _next(data: dict[str, Any], what: str, client: ApiClient) -> str | None:
    paging = data.get("paging")
    following = paging.get("next") if isinstance(paging, dict) else None
    if following is None:
        return None
    if not isinstance(following, str) or "://" not in following:
        raise client.unexpected(what, "paging.next is not a URL")
    return following
