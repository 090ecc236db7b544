"""dora fetch incident-io: the installed command against a fake incident.io API on
127.0.0.1.

``FakeIncidentIo`` answers as incident.io's OpenAPI describes: ``GET /v2/incidents`` with
``page_size``, ``sort_by`` and ``created_at[gte]``/``[lte]`` dates (both days included),
two incidents to a page whatever ``page_size`` asks, so that the ``after`` cursor of
``pagination_meta`` is followed; ``GET /v2/incident_updates?incident_id=``; errors as
``{"type", "status", "request_id", "errors": [{"code", "message", "source"}]}``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from conftest import everything, rows
from fakeapi import Request, run_dora, serve

KEY = "inc_live_5ecr3tK3yV4lue0123456789abcdef"
T0 = datetime(2026, 10, 1, tzinfo=timezone.utc)
WINDOW = ("--since", "2026-10-01", "--until", "2026-11-01")
PAGE = 2


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def ident(n: int) -> str:
    return f"01J{n:023d}"


def error(status: int, kind: str, message: str, source: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"code": kind, "message": message}
    if source:
        found["source"] = {"field": source}
    return {"type": kind, "status": status, "request_id": "req-0001", "errors": [found]}


def catalog(name: str) -> dict[str, Any]:
    return {"value_catalog_entry": {"id": f"cat-{name}", "name": name, "external_id": name}}


def services(*values: dict[str, Any], name: str = "Affected services") -> dict[str, Any]:
    return {
        "custom_field": {"id": "cf-1", "name": name, "field_type": "multi_select"},
        "values": list(values),
    }


def stamp(name: str, at: datetime | None) -> dict[str, Any]:
    found: dict[str, Any] = {"incident_timestamp": {"id": f"ts-{name}", "name": name, "rank": 3}}
    if at is not None:
        found["value"] = {"value": iso(at)}
    return found


@dataclass
class FakeIncidentIo:
    incidents: list[dict[str, Any]] = field(default_factory=list)
    updates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: answers to give instead of the real one, by request number (1 is the first)
    script: dict[int, tuple[int, dict[str, str], Any]] = field(default_factory=dict)
    url: str = ""
    seen: int = 0

    def incident(
        self,
        n: int,
        created: datetime,
        category: str = "live",
        *,
        entries: tuple[dict[str, Any], ...] = (services(catalog("Checkout API")),),
        stamps: tuple[dict[str, Any], ...] = (),
        **fields: Any,
    ) -> None:
        self.incidents.append(
            {
                "id": ident(n),
                "reference": f"INC-{n}",
                "name": f"Checkout errors {n}",
                "mode": "standard",
                "created_at": iso(created),
                "updated_at": iso(created + timedelta(hours=5)),
                "incident_status": {"id": f"st-{category}", "name": category.title(),
                                    "category": category},
                "severity": {"id": "sev-2", "name": "Major", "rank": 2},
                "custom_field_entries": list(entries),
                "incident_timestamp_values": list(stamps),
                "visibility": "public",
                **fields,
            }
        )  # fmt: skip

    def update(self, n: int, at: datetime, category: str) -> None:
        listed = self.updates.setdefault(ident(n), [])
        listed.append(
            {
                "id": f"upd-{n}-{len(listed)}",
                "incident_id": ident(n),
                "created_at": iso(at),
                "message": "An update",
                "new_incident_status": {"id": f"st-{category}", "name": category.title(),
                                        "category": category},
            }
        )  # fmt: skip

    def answer(self, request: Request) -> tuple[int, dict[str, str], Any]:
        self.seen += 1
        if (scripted := self.script.pop(self.seen, None)) is not None:
            return scripted
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return 401, {}, error(401, "authentication_error", "The API key provided is invalid")
        if request.one("page_size") != "250":
            return 422, {}, error(422, "validation_error", "must be 250", "page_size")
        if request.path == "/v2/incidents":
            if request.one("sort_by") != "created_at_newest_first":
                return 422, {}, error(422, "validation_error", "unexpected", "sort_by")
            low, high = request.one("created_at[gte]"), request.one("created_at[lte]")
            found = sorted(
                (i for i in self.incidents if low <= i["created_at"][:10] <= high),
                key=lambda i: i["created_at"],
                reverse=True,
            )
            return self.page(request, found, "incidents")
        if request.path == "/v2/incident_updates":
            return self.page(
                request, self.updates.get(request.one("incident_id"), []), "incident_updates"
            )
        return 404, {}, error(404, "not_found", "Not found")

    def page(self, request: Request, items: list[dict[str, Any]], key: str):
        start = 0
        if (after := request.one("after")) is not None:
            start = next(n for n, item in enumerate(items) if item["id"] == after) + 1
        listed = items[start : start + PAGE]
        meta: dict[str, Any] = {"page_size": 250, "total_record_count": len(items)}
        if start + PAGE < len(items):
            meta["after"] = listed[-1]["id"]
        return 200, {}, {key: listed, "pagination_meta": meta}


@pytest.fixture
def db_path(store_db):
    """Every test here runs on both engines."""
    return store_db


#: HTTP behaviour, not the store's: one engine is enough
ONE_ENGINE = pytest.mark.parametrize("store_db", ["sqlite"], indirect=True)


@pytest.fixture
def fake():
    fake = FakeIncidentIo()
    with serve(fake.answer) as api:
        fake.url = api.url
        fake.api = api  # type: ignore[attr-defined]
        yield fake


def fetch(fake: FakeIncidentIo, *args: str, **env: str | None):
    given: dict[str, str | None] = {"INCIDENT_IO_API_URL": fake.url, "INCIDENT_IO_API_KEY": KEY}
    return run_dora("fetch", "incident-io", *WINDOW, *args, env={**given, **env})


def requested(fake: FakeIncidentIo) -> list[str]:
    shown = []
    for request in fake.api.requests:  # type: ignore[attr-defined]
        asked = request.one("incident_id") or request.one("after") or ""
        shown.append(f"{request.path} {asked}".strip())
    return shown


def stored(db_path: object, new: int, updated: int, unchanged: int) -> str:
    total = new + updated + unchanged
    return (
        f"Imported {total} event{'s' * (total != 1)} from incident.io into {db_path}: "
        f"{new} new, {updated} updated, {unchanged} unchanged."
    )


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


def test_incidents_are_mapped_across_pages(fake, db_path):
    day = timedelta(days=1)
    # newest first: one after the window (its day is asked for), then the window's
    fake.incident(1, T0 + timedelta(days=31, hours=3))
    fake.incident(
        2,
        T0 + 20 * day,
        entries=(
            services(catalog("Checkout API"), {"value_option": {"id": "o1", "value": "Web"}}),
        ),
    )
    fake.incident(
        3,
        T0 + 10 * day,
        "closed",
        stamps=(
            # reported half an hour before it was declared: it starts then
            stamp("Reported at", T0 + 10 * day - timedelta(minutes=30)),
            stamp("RESOLVED AT", T0 + 10 * day + timedelta(hours=2)),
        ),
    )
    fake.incident(4, T0 + 8 * day, "learning", entries=(services({"value_text": "payments"}),))
    fake.update(4, T0 + 8 * day + timedelta(hours=1), "live")
    fake.update(4, T0 + 8 * day + timedelta(hours=3), "learning")  # resolved then
    fake.update(4, T0 + 8 * day + timedelta(hours=9), "closed")  # learning -> closed: not then
    fake.incident(5, T0 + 6 * day, "declined")
    fake.incident(6, T0 + 5 * day, "merged")
    # reopened: closed once (its timestamp is still set), live again: open
    fake.incident(
        7, T0 + 4 * day, "live", stamps=(stamp("Resolved at", T0 + 4 * day + timedelta(hours=1)),)
    )
    fake.update(7, T0 + 4 * day + timedelta(hours=1), "closed")
    fake.update(7, T0 + 4 * day + timedelta(hours=2), "live")
    fake.incident(8, T0 + 2 * day, "closed")  # neither a timestamp nor an update
    fake.incident(9, T0, "paused", severity=None)
    fake.incident(10, T0 - timedelta(seconds=1))  # its day is not asked for

    result = fetch(fake, "--env", "prod")

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "dora: warning: skipped incident.io incident INC-8: closed, but neither a 'Resolved at' "
        "timestamp nor a status update says when it was resolved",
        "dora: warning: skipped 2 incident.io incidents declined, canceled or merged: not "
        "incidents",
        "Fetched 0 deployments and 5 incidents from incident.io in 8 requests.",
        stored(db_path, 5, 0, 0),
    ]
    assert requested(fake) == [
        "/v2/incidents",
        f"/v2/incidents {ident(2)}",  # the cursor: the last of the page before
        f"/v2/incident_updates {ident(4)}",
        f"/v2/incident_updates {ident(4)}",  # its second page
        f"/v2/incidents {ident(4)}",
        f"/v2/incidents {ident(6)}",
        f"/v2/incident_updates {ident(8)}",
        f"/v2/incidents {ident(8)}",
    ]
    assert fake.api.requests[3].one("after") == "upd-4-1"
    first = fake.api.requests[0]
    assert {name: first.one(name) for name in first.query} == {
        "page_size": "250",
        "sort_by": "created_at_newest_first",
        "created_at[gte]": "2026-09-30",
        "created_at[lte]": "2026-11-02",  # the day after --until: cut exactly here
    }
    assert rows(
        db_path,
        "SELECT id, name, severity, env, team, started_at, finished_at FROM incidents "
        "ORDER BY started_at DESC",
    ) == [
        {
            "id": f"incident-io-{ident(n)}",
            "name": f"Checkout errors {n}",
            "severity": None if n == 9 else "Major",
            "env": "prod",
            "team": None,
            "started_at": ns(started),
            "finished_at": None if finished is None else ns(finished),
        }
        for n, started, finished in [
            (2, T0 + 20 * day, None),
            (3, T0 + 10 * day - timedelta(minutes=30), T0 + 10 * day + timedelta(hours=2)),
            (4, T0 + 8 * day, T0 + 8 * day + timedelta(hours=3)),
            (7, T0 + 4 * day, None),
            (9, T0, None),
        ]
    ]
    assert rows(
        db_path,
        "SELECT incident_id, service FROM incident_services ORDER BY incident_id, position",
    ) == [
        {"incident_id": f"incident-io-{ident(n)}", "service": service}
        for n, service in [(2, "Checkout API"), (2, "Web"), (3, "Checkout API"),
                           (4, "payments"), (7, "Checkout API"), (9, "Checkout API")]
    ]  # fmt: skip


@ONE_ENGINE
def test_a_retrospective_incident_is_resolved_by_an_update_only_from_an_open_status(fake, db_path):
    # declared closed: an update that leaves it closed says nothing of when it ended
    fake.incident(1, T0 + timedelta(days=1), "closed", mode="retrospective")
    fake.update(1, T0 + timedelta(days=1, hours=1), "closed")
    fake.incident(2, T0 + timedelta(days=2), "closed", mode="retrospective")
    fake.update(2, T0 + timedelta(days=2, hours=1), "live")
    fake.update(2, T0 + timedelta(days=2, hours=2), "closed")

    result = fetch(fake)

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        "dora: warning: skipped incident.io incident INC-1: closed, but neither a 'Resolved at' "
        "timestamp nor a status update says when it was resolved"
    )
    assert rows(db_path, "SELECT id, finished_at FROM incidents") == [
        {"id": f"incident-io-{ident(2)}", "finished_at": ns(T0 + timedelta(days=2, hours=2))}
    ]


def test_a_retrospective_incident_starts_when_it_was_reported(fake, db_path):
    # declared on Oct 10 about an outage of Oct 3, 09:00 to 11:00
    fake.incident(
        1,
        T0 + timedelta(days=9),
        "closed",
        mode="retrospective",
        stamps=(
            stamp("Reported at", T0 + timedelta(days=2, hours=9)),
            stamp("Resolved at", T0 + timedelta(days=2, hours=11)),
        ),
    )

    result = fetch(fake)

    assert result.returncode == 0, result.stderr
    assert rows(db_path, "SELECT started_at, finished_at FROM incidents") == [
        {
            "started_at": ns(T0 + timedelta(days=2, hours=9)),
            "finished_at": ns(T0 + timedelta(days=2, hours=11)),
        }
    ]


def test_a_second_fetch_changes_nothing_and_a_resolution_updates(fake, db_path):
    fake.incident(1, T0 + timedelta(days=1))
    fake.incident(2, T0 + timedelta(days=2))

    first = fetch(fake)
    second = fetch(fake)
    fake.incidents[0]["incident_status"]["category"] = "closed"
    fake.incidents[0]["incident_timestamp_values"] = [
        stamp("Resolved at", T0 + timedelta(days=1, hours=1))
    ]
    third = fetch(fake)

    assert first.stderr.splitlines()[-1] == stored(db_path, 2, 0, 0)
    assert second.stderr.splitlines()[-1] == stored(db_path, 0, 0, 2)
    assert third.stderr.splitlines()[-1] == stored(db_path, 0, 1, 1)


@ONE_ENGINE
def test_a_429_mid_paging_is_waited_for(fake, db_path):
    for n in range(1, 6):
        fake.incident(n, T0 + timedelta(days=n))
    limited = error(429, "rate_limited", "Too many requests")
    fake.script = {2: (429, {"Retry-After": "1"}, limited)}

    began = time.monotonic()
    result = fetch(fake)

    assert result.returncode == 0, result.stderr
    assert time.monotonic() - began >= 1
    assert rows(db_path, "SELECT count(*) AS n FROM incidents") == [{"n": 5}]
    assert requested(fake) == [
        "/v2/incidents",
        f"/v2/incidents {ident(4)}",  # refused
        f"/v2/incidents {ident(4)}",
        f"/v2/incidents {ident(2)}",
    ]


@ONE_ENGINE
def test_a_service_not_in_the_service_map_is_warned_about(fake, db_path):
    fake.incident(1, T0 + timedelta(days=1))
    fake.incident(2, T0 + timedelta(days=2), entries=(services(catalog("Web")),))

    result = fetch(fake, "--service-map", "Checkout API=api")

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        "dora: warning: incident.io service 'Web' is not in --service-map; its 1 event keeps "
        "that name"
    )
    assert rows(db_path, "SELECT service FROM incident_services ORDER BY service") == [
        {"service": "Web"},
        {"service": "api"},
    ]


@ONE_ENGINE
def test_the_services_field_and_resolved_timestamp_can_be_named(fake, db_path):
    fake.incident(
        1,
        T0 + timedelta(days=1),
        "closed",
        entries=(services(catalog("Checkout API")), services(catalog("web"), name="Systems")),
        stamps=(
            stamp("Resolved at", T0 + timedelta(days=1, hours=5)),
            stamp("Fixed at", T0 + timedelta(days=1, hours=1)),
        ),
    )

    result = fetch(fake, "--services-field", "systems", "--resolved-timestamp", "FIXED AT")

    assert result.returncode == 0, result.stderr
    assert rows(db_path, "SELECT service FROM incident_services") == [{"service": "web"}]
    assert rows(db_path, "SELECT finished_at FROM incidents") == [
        {"finished_at": ns(T0 + timedelta(days=1, hours=1))}
    ]


@ONE_ENGINE
def test_a_services_field_no_incident_has_is_warned_about(fake, db_path):
    fake.incident(1, T0 + timedelta(days=1))

    result = fetch(fake, "--services-field", "Components", "--team", "sre")

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        "dora: warning: no incident.io incident fetched has the custom field 'Components' "
        "(--services-field): none has a service"
    )
    assert rows(db_path, "SELECT team FROM incidents") == [{"team": "sre"}]


@ONE_ENGINE
def test_dry_run_prints_records_and_writes_nothing(fake, db_path):
    fake.incident(
        1,
        T0 + timedelta(days=1),
        "closed",
        stamps=(stamp("Resolved at", T0 + timedelta(days=1, hours=1)),),
    )

    result = fetch(fake, "--dry-run", "--env", "prod")

    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {
            "type": "incident",
            "id": f"incident-io-{ident(1)}",
            "services": ["Checkout API"],
            "env": "prod",
            "name": "Checkout errors 1",
            "severity": "Major",
            "started_at": "2026-10-02T00:00:00.000Z",
            "finished_at": "2026-10-02T01:00:00.000Z",
        }
    ]
    assert result.stderr.splitlines()[-1] == "Dry run: nothing was written."
    assert rows(db_path, "SELECT count(*) AS n FROM incidents") in ([], [{"n": 0}])


@ONE_ENGINE
def test_a_refused_key_is_one_line_naming_its_variable(fake, db_path):
    fake.incident(1, T0 + timedelta(days=1))

    result = fetch(fake, INCIDENT_IO_API_KEY="not-the-key")

    assert result.returncode == 1
    assert result.stderr == (
        "dora: error: incident.io refused the token (401 Unauthorized: The API key provided "
        "is invalid); check INCIDENT_IO_API_KEY\n"
    )
    assert rows(db_path, "SELECT count(*) AS n FROM incidents") in ([], [{"n": 0}])


@ONE_ENGINE
def test_a_validation_error_is_one_line(fake, db_path):
    fake.script = {1: (422, {}, error(422, "validation_error", "is not a date", "created_at"))}

    result = fetch(fake)

    assert result.returncode == 1
    assert result.stderr == (
        "dora: error: incident.io refused to list the incidents (422 Unprocessable Entity: "
        "created_at: is not a date)\n"
    )


def test_the_key_is_in_no_output_and_no_store_file(fake, db_path):
    fake.incident(1, T0 + timedelta(days=1))
    result = fetch(fake, "-v")
    fake.script = {fake.seen + 1: (403, {}, error(403, "forbidden", f"Key {KEY} may not"))}
    refused = fetch(fake, "-v")

    assert result.returncode == 0, result.stderr
    assert refused.returncode == 1
    assert "***" in refused.stderr
    assert KEY not in result.stdout + result.stderr + refused.stdout + refused.stderr
    assert KEY not in everything(db_path)


@ONE_ENGINE
@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--service-map", "=api"), {}, "--service-map: '=api' is not 'NAME=SERVICE'"),
        (("--services-field", " "), {}, "--services-field: must not be empty"),
        ((), {"INCIDENT_IO_API_KEY": None},
         "INCIDENT_IO_API_KEY is not set: give it an incident.io API key that may view "
         "incidents"),
    ],
)  # fmt: skip
def test_a_usage_error_is_one_line_and_asks_nothing(fake, db_path, args, env, message):
    result = fetch(fake, *args, **env)

    assert result.returncode == 2
    assert result.stderr == f"dora: error: {message}\n"
    assert fake.api.requests == []
