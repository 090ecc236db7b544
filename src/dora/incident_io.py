"""Incidents from incident.io's API, as ``dora import`` records.

The API key goes in ``Authorization: Bearer ...``; ``INCIDENT_IO_API_URL`` replaces
``https://api.incident.io`` (a proxy, a test). ``GET /v2/incidents`` is asked for the
incidents created from the window's first day to its last (the filters take dates),
newest first, 250 to a page, following ``pagination_meta.after``; the window [since, until)
is then kept exactly here. incident.io lists the incidents of modes standard and
retrospective only (test and tutorial incidents are left out), and dora keeps that. A 429
is waited for (its ``Retry-After``, in seconds or an HTTP date) within the retry budget.

===========================================  ==========================================
incident.io                                  dora
===========================================  ==========================================
``id``                                       ``id``: ``incident-io-<ID>``
the timestamp named ``--started-timestamp``  ``started_at`` (a retrospective incident,
(Reported at), else ``created_at``           declared after it was over, starts then)
status category triage, live, paused         open: no ``finished_at``
status category learning, closed             ``finished_at``: the timestamp named
                                             ``--resolved-timestamp`` (Resolved at), else
                                             the latest status update that moved it from
                                             an open category to learning or closed
status category declined, canceled, merged   not an incident: skipped, counted in a warning
``name``                                     ``name``
``severity.name``                            ``severity``
the custom field ``--services-field``        ``services`` (a catalog entry's name, an
(Affected services)                          option's value, or text), renamed through
                                             ``--service-map``
(none)                                       ``env`` and ``team``: those given
===========================================  ==========================================

Names of custom fields and timestamps are compared without regard to case. A resolved
incident with neither a resolution timestamp nor a status update that resolved it is
skipped with a warning; one reopened (live again after being closed) is open.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from dora import fetching
from dora.backends import http
from dora.fetching import ApiClient, Fetched, Names

if TYPE_CHECKING:
    import httpx

API = fetching.Api(
    name="incident.io",
    auth_variable="INCIDENT_IO_API_KEY",
    url_variable="INCIDENT_IO_API_URL",
    default_url="https://api.incident.io",
    auth_is="an incident.io API key that may view incidents",
    auth=lambda key: {"Authorization": f"Bearer {key}"},
)
PAGE = "250"
OPEN = frozenset({"triage", "live", "paused"})
RESOLVED = frozenset({"learning", "closed"})
NOT_INCIDENTS = frozenset({"declined", "canceled", "merged"})
DEFAULT_SERVICES_FIELD = "Affected services"
DEFAULT_RESOLVED_TIMESTAMP = "Resolved at"
DEFAULT_STARTED_TIMESTAMP = "Reported at"
_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def describe(response: httpx.Response) -> str:
    """``422 Unprocessable Entity: page_size: must be at most 250``, from incident.io's
    ``{"type", "status", "request_id", "errors": [{"code", "message", "source"}]}``."""
    data = http.json_body(response)
    parts = []
    errors = data.get("errors") if isinstance(data, dict) else None
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, dict):
            continue
        message = str(error.get("message") or error.get("code") or "")
        source = error.get("source")
        where = source.get("field") if isinstance(source, dict) else None
        if message:
            parts.append(f"{where}: {message}" if where else message)
    if not parts and isinstance(data, dict) and data.get("type"):
        parts.append(str(data["type"]))
    detail = "; ".join(parts) if parts else response.text
    return http.status_line(response, http.one_line(detail))


def client(env: Mapping[str, str], **kwargs: Any) -> ApiClient:
    return ApiClient(API, fetching.account(API, env), describe=describe, **kwargs)


@dataclass(frozen=True)
class Options:
    """What to fetch: the incidents created in [since, until)."""

    since: datetime
    until: datetime
    service_map: Mapping[str, str] = field(default_factory=dict)  # incident.io name -> service
    env: str | None = None
    team: str | None = None
    services_field: str = DEFAULT_SERVICES_FIELD
    resolved_timestamp: str = DEFAULT_RESOLVED_TIMESTAMP
    started_timestamp: str = DEFAULT_STARTED_TIMESTAMP


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
            options.service_map, flag="--service-map", source="incident.io", what="service"
        )
        self.not_incidents = 0
        self.with_field = 0

    def read(self) -> Fetched:
        what = "list the incidents"
        params = {
            "page_size": PAGE,
            "sort_by": "created_at_newest_first",
            # a day either side: whether a date means UTC's or the organisation's day, and
            # its midnight or its whole day, is not documented; the window is cut here
            "created_at[gte]": (self.options.since.date() - timedelta(days=1)).isoformat(),
            "created_at[lte]": (self.options.until.date() + timedelta(days=1)).isoformat(),
        }
        found: dict[str, dict[str, Any]] = {}
        for item in self._pages("/v2/incidents", params, "incidents", what):
            created = _time(item, "created_at", what, self.client)
            if not self.options.since <= created < self.options.until:
                continue
            if item["id"] in found:
                continue
            record = self._record(item)
            if record is not None:
                found[item["id"]] = record
                if self.progress:
                    self.progress(len(found))
        self.fetched.records = list(found.values())
        if self.not_incidents:
            n = self.not_incidents
            self.fetched.warnings.append(
                f"skipped {n:,} incident.io incident{'s' * (n != 1)} declined, canceled or "
                "merged: not incidents"
            )
        if found and not self.with_field:
            self.fetched.warnings.append(
                f"no incident.io incident fetched has the custom field "
                f"'{self.options.services_field}' (--services-field): none has a service"
            )
        self.fetched.warnings += self.names.warnings()
        self.fetched.requests = self.client.requests
        return self.fetched

    def _pages(
        self, path: str, params: dict[str, str], key: str, what: str
    ) -> Iterator[dict[str, Any]]:
        """The items of each page of a list, following ``pagination_meta.after``."""
        after: str | None = None
        while True:
            asked = params if after is None else {**params, "after": after}
            data, _ = self.client.get(path, asked, what=what, check=API.url_variable)
            listed = data.get(key) if isinstance(data, dict) else None
            if not isinstance(listed, list):
                raise self.client.unexpected(what, f"no {key} list")
            for item in listed:
                ident = item.get("id") if isinstance(item, dict) else None
                if not isinstance(ident, str) or not _ID.fullmatch(ident):
                    raise self.client.unexpected(what, "an item without an id")
                yield item
            meta = data.get("pagination_meta")
            following = meta.get("after") if isinstance(meta, dict) else None
            if not listed or not following:
                return
            if not isinstance(following, str) or following == after:
                raise self.client.unexpected(what, "pagination_meta.after is not a new cursor")
            after = following

    def _record(self, item: dict[str, Any]) -> dict[str, Any] | None:
        status = item.get("incident_status")
        category = status.get("category") if isinstance(status, dict) else None
        shown = _shown(item)
        if category in NOT_INCIDENTS:
            self.not_incidents += 1
            return None
        finished: str | None = None
        if category in RESOLVED:
            finished = self._resolved(item)
            if finished is None:
                self.fetched.warnings.append(
                    f"skipped incident.io incident {shown}: {category}, but neither a "
                    f"'{self.options.resolved_timestamp}' timestamp nor a status update "
                    "says when it was resolved"
                )
                return None
        elif category not in OPEN:
            self.fetched.warnings.append(
                f"skipped incident.io incident {shown}: its status category "
                f"'{http.one_line(str(category), 40)}' is not one dora knows"
            )
            return None
        severity = item.get("severity")
        record = {
            "type": "incident",
            "id": fetching.event_id("incident-io", item["id"]),
            "services": [self.names(name) for name in self._services(item)],
            "env": self.options.env,
            "team": self.options.team,
            "name": fetching.line(item.get("name")),
            "severity": fetching.line(severity.get("name")) if isinstance(severity, dict) else None,
            "started_at": self._stamp(item, self.options.started_timestamp)
            or item.get("created_at"),
            "finished_at": finished,
        }
        return {key: value for key, value in record.items() if value is not None}

    def _services(self, item: dict[str, Any]) -> list[str]:
        """The values of the services custom field: a catalog entry's name, an option's
        value, or text."""
        wanted = self.options.services_field.casefold()
        found: list[str] = []
        entries = item.get("custom_field_entries")
        for entry in entries if isinstance(entries, list) else []:
            custom = entry.get("custom_field") if isinstance(entry, dict) else None
            name = custom.get("name") if isinstance(custom, dict) else None
            if not isinstance(name, str) or name.strip().casefold() != wanted:
                continue
            self.with_field += 1
            values = entry.get("values")
            for value in values if isinstance(values, list) else []:
                if (text := _value(value)) is not None and text not in found:
                    found.append(text)
        return found

    def _resolved(self, item: dict[str, Any]) -> str | None:
        """When a resolved incident was resolved: its resolution timestamp, else the
        latest status update that moved it from an open category to a resolved one."""
        return self._stamp(item, self.options.resolved_timestamp) or self._resolved_by_update(item)

    def _stamp(self, item: dict[str, Any], named: str) -> str | None:
        """The value of the incident's timestamp ``named`` (any case), when it has one."""
        wanted = named.casefold()
        stamps = item.get("incident_timestamp_values")
        for stamp in stamps if isinstance(stamps, list) else []:
            about = stamp.get("incident_timestamp") if isinstance(stamp, dict) else None
            name = about.get("name") if isinstance(about, dict) else None
            if not isinstance(name, str) or name.strip().casefold() != wanted:
                continue
            value = stamp.get("value")
            at = value.get("value") if isinstance(value, dict) else None
            if fetching.moment(at) is not None:
                return str(at)
        return None

    def _resolved_by_update(self, item: dict[str, Any]) -> str | None:
        what = f"list the updates of incident {_shown(item)}"
        updates = []
        params = {"incident_id": item["id"], "page_size": PAGE}
        for update in self._pages("/v2/incident_updates", params, "incident_updates", what):
            status = update.get("new_incident_status")
            category = status.get("category") if isinstance(status, dict) else None
            at = fetching.moment(update.get("created_at"))
            if at is not None and isinstance(category, str):
                updates.append((at, update["id"], category, update["created_at"]))
        # a retrospective incident is declared resolved; any other starts open
        before = "closed" if item.get("mode") == "retrospective" else "live"
        resolved = None
        for _, _, category, at in sorted(updates):
            if category in RESOLVED and before in OPEN:
                resolved = at
            before = category
        return resolved


def _value(value: Any) -> str | None:
    """A custom field value as text: a catalog entry's name, an option's value, or text."""
    if not isinstance(value, dict):
        return None
    entry, option = value.get("value_catalog_entry"), value.get("value_option")
    if isinstance(entry, dict) and (name := fetching.line(entry.get("name"))):
        return str(name)
    if isinstance(option, dict) and (text := fetching.line(option.get("value"))):
        return str(text)
    text = fetching.line(value.get("value_text"))
    return text if isinstance(text, str) else None


def _shown(item: dict[str, Any]) -> str:
    """``INC-123``, or the id when there is no reference."""
    reference = item.get("reference")
    if isinstance(reference, str) and reference.strip():
        return http.one_line(reference, 40)
    return str(item["id"])


def _time(item: dict[str, Any], name: str, what: str, client: ApiClient) -> datetime:
    found = fetching.moment(item.get(name))
    if found is None:
        raise client.unexpected(what, f"{name} is not a time")
    return found
