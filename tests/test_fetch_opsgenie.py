"""dora fetch opsgenie: the installed command against a fake Opsgenie Incident API on
127.0.0.1.

``FakeOpsgenie`` answers as Opsgenie documents: ``GET /v1/incidents`` with its required
``query``, ``offset``, ``limit``, ``sort`` and ``order`` (newest first), two incidents to a
page whatever ``limit`` asks, so that paging is exercised, and ``paging.next`` a whole URL;
``GET /v1/services/{id}``; errors as ``{"message", "took", "requestId"}``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import pytest

from conftest import everything, rows
from fakeapi import Request, run_dora, serve

KEY = "0d1f3a7c-5ecr-4e7b-9a1b-0123456789ab"  # the shape of an Opsgenie API key
T0 = datetime(2026, 10, 1, tzinfo=timezone.utc)
WINDOW = ("--since", "2026-10-01", "--until", "2026-11-01")
PAGE = 2
QUERY = "status:open OR status:resolved OR status:closed"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def error(message: str) -> dict[str, Any]:
    return {"message": message, "took": 0.001, "requestId": "3f0d1c2e-0000-4000-8000-000000000000"}


@dataclass
class FakeOpsgenie:
    incidents: list[dict[str, Any]] = field(default_factory=list)
    services: dict[str, str] = field(default_factory=dict)  # id -> name
    #: answers to give instead of the real one, by request number (1 is the first)
    script: dict[int, tuple[int, dict[str, str], Any]] = field(default_factory=dict)
    url: str = ""
    seen: int = 0

    def incident(
        self,
        n: int,
        created: datetime,
        status: str = "open",
        services: tuple[str, ...] = ("svc-api",),
        **fields: Any,
    ) -> None:
        self.incidents.append(
            {
                "id": f"70413a06-38d6-4c85-92b8-{n:012d}",
                "tinyId": str(n),
                "message": f"Checkout errors {n}",
                "status": status,
                "tags": ["checkout"],
                "createdAt": iso(created),
                "updatedAt": iso(created + timedelta(hours=5)),
                "priority": "P2",
                "ownerTeam": "",
                "impactedServices": list(services),
                "impactStartDate": iso(created),
                **fields,
            }
        )

    def answer(self, request: Request) -> tuple[int, dict[str, str], Any]:
        self.seen += 1
        if (scripted := self.script.pop(self.seen, None)) is not None:
            return scripted
        if request.headers.get("authorization") != f"GenieKey {KEY}":
            return 401, {}, error("Could not authenticate")
        if request.path == "/v1/incidents":
            return self.page(request)
        if request.path.startswith("/v1/services/"):
            ident = request.path.removeprefix("/v1/services/")
            if ident not in self.services:
                return 404, {}, error("Service not found")
            return 200, {}, {"data": {"id": ident, "name": self.services[ident]}, "took": 0.01}
        return 404, {}, error("Not found")

    def page(self, request: Request) -> tuple[int, dict[str, str], Any]:
        asked = {name: request.one(name) for name in ("query", "sort", "order")}
        if asked != {"query": QUERY, "sort": "createdAt", "order": "desc"}:
            return 422, {}, error(f"Unexpected query: {asked}")
        offset = int(request.one("offset") or "0")
        ordered = sorted(self.incidents, key=lambda i: i["createdAt"], reverse=True)
        body: dict[str, Any] = {
            "data": ordered[offset : offset + PAGE],
            "paging": {},
            "took": 0.1,
            "requestId": "9ae63dd7-0000-4000-8000-000000000000",
        }
        if offset + PAGE < len(ordered):
            query = {"query": QUERY, "offset": offset + PAGE, "limit": PAGE}
            query |= {"sort": "createdAt", "order": "desc"}
            body["paging"]["next"] = f"{self.url}/v1/incidents?{urlencode(query)}"
        return 200, {}, body


@pytest.fixture
def db_path(store_db):
    """Every test here runs on both engines."""
    return store_db


#: HTTP behaviour, not the store's: one engine is enough
ONE_ENGINE = pytest.mark.parametrize("store_db", ["sqlite"], indirect=True)


@pytest.fixture
def fake():
    fake = FakeOpsgenie(services={"svc-api": "Checkout API", "svc-web": "Web"})
    with serve(fake.answer) as api:
        fake.url = api.url
        fake.api = api  # type: ignore[attr-defined]
        yield fake


def fetch(fake: FakeOpsgenie, *args: str, **env: str | None):
    given: dict[str, str | None] = {"OPSGENIE_API_URL": fake.url, "OPSGENIE_API_KEY": KEY}
    return run_dora("fetch", "opsgenie", *WINDOW, *args, env={**given, **env})


def requested(fake: FakeOpsgenie) -> list[str]:
    return [
        request.path + (f"?offset={request.one('offset')}" if request.query else "")
        for request in fake.api.requests  # type: ignore[attr-defined]
    ]


def test_incidents_are_mapped_with_service_names_asked_once(fake, db_path):
    # newest first: two incidents after the window, five in it, then older ones
    fake.incident(1, T0 + timedelta(days=40))
    fake.incident(2, T0 + timedelta(days=31))  # at --until: excluded
    fake.incident(3, T0 + timedelta(days=20), services=("svc-api", "svc-web"))  # open
    fake.incident(
        4, T0 + timedelta(days=10), "resolved", impactEndDate=iso(T0 + timedelta(days=10, hours=2))
    )
    fake.incident(5, T0 + timedelta(days=5), "closed")  # no impactEndDate: its updatedAt
    fake.incident(6, T0 + timedelta(days=2), "resolved", services=(), priority="P1")
    fake.incident(7, T0)  # at --since: included
    fake.incident(8, T0 - timedelta(seconds=1))
    for n in range(9, 15):  # never asked for: paging stops at the first before --since
        fake.incident(n, T0 - timedelta(days=n))

    result = fetch(fake, "--env", "prod", "--team", "payments")

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "Fetched 0 deployments and 5 incidents from Opsgenie in 6 requests.",
        stored(db_path, 5, 0, 0),
    ]
    assert requested(fake) == [
        "/v1/incidents?offset=0",
        "/v1/incidents?offset=2",
        "/v1/services/svc-api",
        "/v1/services/svc-web",
        "/v1/incidents?offset=4",
        "/v1/incidents?offset=6",
    ]
    assert fake.api.requests[0].one("limit") == "100"
    assert rows(
        db_path,
        "SELECT id, name, severity, env, team, started_at, finished_at FROM incidents "
        "ORDER BY started_at DESC",
    ) == [
        {
            "id": f"opsgenie-70413a06-38d6-4c85-92b8-{n:012d}",
            "name": f"Checkout errors {n}",
            "severity": "P1" if n == 6 else "P2",
            "env": "prod",
            "team": "payments",
            "started_at": ns(started),
            "finished_at": None if finished is None else ns(finished),
        }
        for n, started, finished in [
            (3, T0 + timedelta(days=20), None),
            (4, T0 + timedelta(days=10), T0 + timedelta(days=10, hours=2)),
            (5, T0 + timedelta(days=5), T0 + timedelta(days=5, hours=5)),
            (6, T0 + timedelta(days=2), T0 + timedelta(days=2, hours=5)),
            (7, T0, None),
        ]
    ]
    assert rows(
        db_path,
        "SELECT incident_id, service FROM incident_services ORDER BY incident_id, position",
    ) == [
        {"incident_id": f"opsgenie-70413a06-38d6-4c85-92b8-{n:012d}", "service": service}
        for n, service in [(3, "Checkout API"), (3, "Web"), (4, "Checkout API"),
                           (5, "Checkout API"), (7, "Checkout API")]
    ]  # fmt: skip


def stored(db_path: object, new: int, updated: int, unchanged: int) -> str:
    total = new + updated + unchanged
    return (
        f"Imported {total} event{'s' * (total != 1)} from Opsgenie into {db_path}: {new} new, "
        f"{updated} updated, {unchanged} unchanged."
    )


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


def test_a_second_fetch_changes_nothing_and_a_resolution_updates(fake, db_path):
    fake.incident(1, T0 + timedelta(days=1))
    fake.incident(2, T0 + timedelta(days=2))

    first = fetch(fake)
    second = fetch(fake)
    fake.incidents[0]["status"] = "resolved"
    fake.incidents[0]["impactEndDate"] = iso(T0 + timedelta(days=1, hours=1))
    third = fetch(fake)

    assert first.stderr.splitlines()[-1] == stored(db_path, 2, 0, 0)
    assert second.stderr.splitlines()[-1] == stored(db_path, 0, 0, 2)
    assert third.stderr.splitlines()[-1] == stored(db_path, 0, 1, 1)
    assert rows(db_path, "SELECT count(*) AS n FROM incidents WHERE finished_at IS NULL") == [
        {"n": 1}
    ]


@ONE_ENGINE
def test_a_429_mid_paging_is_waited_for(fake, db_path):
    for n in range(1, 6):
        fake.incident(n, T0 + timedelta(days=n))
    fake.script = {3: (429, {"Retry-After": "1"}, error("You are making too many requests"))}

    began = time.monotonic()
    result = fetch(fake)

    assert result.returncode == 0, result.stderr
    assert time.monotonic() - began >= 1
    assert rows(db_path, "SELECT count(*) AS n FROM incidents") == [{"n": 5}]
    assert requested(fake) == [
        "/v1/incidents?offset=0",
        "/v1/services/svc-api",
        "/v1/incidents?offset=2",  # refused
        "/v1/incidents?offset=2",
        "/v1/incidents?offset=4",
    ]


@ONE_ENGINE
def test_a_service_not_in_the_service_map_is_warned_about(fake, db_path):
    fake.incident(1, T0 + timedelta(days=1), services=("svc-api",))
    fake.incident(2, T0 + timedelta(days=2), services=("svc-web",))

    result = fetch(fake, "--service-map", "Checkout API=api")

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        "dora: warning: Opsgenie service 'Web' is not in --service-map; its 1 event keeps that name"
    )
    assert rows(db_path, "SELECT service FROM incident_services ORDER BY service") == [
        {"service": "Web"},
        {"service": "api"},
    ]


@ONE_ENGINE
def test_a_service_opsgenie_no_longer_has_keeps_its_id_with_one_warning(fake, db_path):
    fake.incident(1, T0 + timedelta(days=1), services=("svc-gone",))
    fake.incident(2, T0 + timedelta(days=2), services=("svc-gone", "svc-api"))

    result = fetch(fake)

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        "dora: warning: Opsgenie has no service svc-gone (deleted?): its incidents name it "
        "by its id"
    )
    assert "svc-gone" not in result.stderr.split("\n", 1)[1]
    assert requested(fake).count("/v1/services/svc-gone") == 1
    assert rows(db_path, "SELECT DISTINCT service FROM incident_services ORDER BY service") == [
        {"service": "Checkout API"},
        {"service": "svc-gone"},
    ]


@ONE_ENGINE
def test_an_incident_without_a_service_or_team_is_skipped_with_a_warning(fake, db_path):
    fake.incident(1, T0 + timedelta(days=1), services=())
    fake.incident(2, T0 + timedelta(days=2))

    result = fetch(fake)

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        "dora: warning: skipped Opsgenie incident opsgenie-70413a06-38d6-4c85-92b8-000000000001:"
        " services: name at least one service, or a team"
    )
    assert rows(db_path, "SELECT count(*) AS n FROM incidents") == [{"n": 1}]


@ONE_ENGINE
def test_dry_run_prints_records_and_writes_nothing(fake, db_path):
    fake.incident(
        1, T0 + timedelta(days=1), "resolved", impactEndDate=iso(T0 + timedelta(days=1, hours=1))
    )

    result = fetch(fake, "--dry-run", "--env", "prod")

    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {
            "type": "incident",
            "id": "opsgenie-70413a06-38d6-4c85-92b8-000000000001",
            "services": ["Checkout API"],
            "env": "prod",
            "name": "Checkout errors 1",
            "severity": "P2",
            "started_at": "2026-10-02T00:00:00.000Z",
            "finished_at": "2026-10-02T01:00:00.000Z",
        }
    ]
    assert result.stderr.splitlines()[-1] == "Dry run: nothing was written."
    assert rows(db_path, "SELECT count(*) AS n FROM incidents") in ([], [{"n": 0}])


@ONE_ENGINE
def test_a_refused_key_is_one_line_naming_its_variable(fake, db_path):
    fake.incident(1, T0 + timedelta(days=1))

    result = fetch(fake, OPSGENIE_API_KEY="not-the-key")

    assert result.returncode == 1
    assert result.stderr == (
        "dora: error: Opsgenie refused the token (401 Unauthorized: Could not authenticate); "
        "check OPSGENIE_API_KEY\n"
    )
    assert rows(db_path, "SELECT count(*) AS n FROM incidents") in ([], [{"n": 0}])


def test_the_key_is_in_no_output_and_no_store_file(fake, db_path):
    fake.incident(1, T0 + timedelta(days=1))
    result = fetch(fake, "-v")
    fake.script = {fake.seen + 1: (403, {}, error(f"Key {KEY} may not list incidents"))}
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
        (("--service-map", "api"), {}, "--service-map: 'api' is not 'NAME=SERVICE'"),
        ((), {"OPSGENIE_API_KEY": None},
         "OPSGENIE_API_KEY is not set: give it an Opsgenie API key that may read incidents "
         "and services"),
        ((), {"OPSGENIE_API_URL": "api.eu.opsgenie.com"},
         "OPSGENIE_API_URL: 'api.eu.opsgenie.com' is not an http:// or https:// URL with a host"),
    ],
)  # fmt: skip
def test_a_usage_error_is_one_line_and_asks_nothing(fake, db_path, args, env, message):
    result = fetch(fake, *args, **env)

    assert result.returncode == 2
    assert result.stderr == f"dora: error: {message}\n"
    assert fake.api.requests == []
