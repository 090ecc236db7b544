"""dora fetch pagerduty (once dora incident import-pagerduty): what is asked of PagerDuty,
how its incidents are mapped, what lands in the store, and what is said when PagerDuty
refuses or fails.

PagerDuty is played by ``FakePagerDuty``, a respx side effect that answers ``GET
/incidents`` as PagerDuty's REST API v2 does: the incidents created in [since, until),
``offset``/``limit`` pages with ``more``, ``total`` only when asked for, and no page past
the 10,000th result. The clock is pinned at FIXED_NOW, so the default window (90 days)
is 2026-08-26T12:00:00Z to 2026-11-24T12:00:00Z.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import FakeTime, count, rows
from dora import pagerduty, timeparse
from dora.errors import UsageError
from dora.events import Incident
from dora.store import open_store

pytestmark = pytest.mark.usefixtures("frozen_now")

API = "https://api.pagerduty.com"
TOKEN = "y_NbAkKc66ryYTWUXYEu"  # the shape of a PagerDuty REST API key
WINDOW = {"since": "2026-08-26T12:00:00Z", "until": "2026-11-24T12:00:00Z"}


def incident(
    pd_id: str = "PT4KHLK",
    *,
    number: int = 1234,
    title: str = "The server is on fire.",
    created: str = "2026-11-20T09:00:00Z",
    status: str = "resolved",
    resolved: str | None = "2026-11-20T10:30:00Z",
    service: str = "Checkout API",
    urgency: str = "high",
    priority: str | None = None,
    teams: tuple[str, ...] = (),
) -> dict[str, Any]:
    """An incident as PagerDuty lists it (GET /incidents), with the fields it documents."""
    last_change = resolved if status == "resolved" and resolved else created
    return {
        "id": pd_id,
        "type": "incident",
        "summary": f"[#{number}] {title}",
        "self": f"{API}/incidents/{pd_id}",
        "html_url": f"https://acme.pagerduty.com/incidents/{pd_id}",
        "incident_number": number,
        "title": title,
        "created_at": created,
        "updated_at": last_change,
        "status": status,
        "incident_key": f"key-{pd_id.lower()}",
        "service": {
            "id": "PIJ90N7",
            "type": "service_reference",
            "summary": service,
            "self": f"{API}/services/PIJ90N7",
            "html_url": "https://acme.pagerduty.com/service-directory/PIJ90N7",
        },
        "assignments": [],
        "assigned_via": "escalation_policy",
        "last_status_change_at": last_change,
        "resolved_at": resolved if status == "resolved" else None,
        "alert_counts": {"all": 1, "triggered": 0, "resolved": 1},
        "is_mergeable": True,
        "urgency": urgency,
        "priority": (
            {
                "id": "P53ZZH5",
                "type": "priority_reference",
                "summary": priority,
                "self": f"{API}/priorities/P53ZZH5",
            }
            if priority
            else None
        ),
        "teams": [
            {"id": f"PQ9K7I{n}", "type": "team_reference", "summary": team}
            for n, team in enumerate(teams)
        ],
        "resolve_reason": None,
    }


def parse(text: str) -> datetime:
    return timeparse.parse_timestamp(text)


@dataclass
class FakePagerDuty:
    """GET /incidents as PagerDuty answers it."""

    incidents: list[dict[str, Any]] = field(default_factory=list)
    #: whether ``total=true`` gets a count (PagerDuty's does; an older proxy may drop it)
    counts: bool = True
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        params = request.url.params
        since, until = parse(params["since"]), parse(params["until"])
        offset, limit = int(params["offset"]), int(params["limit"])
        if until - since > timedelta(days=183):
            return pd_error(400, "Invalid Input Provided", "Date range is too large")
        if offset + limit > pagerduty.MAX_RESULTS:
            return pd_error(400, "Invalid Input Provided", "Offset must be less than 10000")
        found = [i for i in self.incidents if since <= parse(i["created_at"]) < until]
        total = len(found) if self.counts and params.get("total") == "true" else None
        body = {
            "incidents": found[offset : offset + limit],
            "limit": limit,
            "offset": offset,
            "total": total,
            "more": offset + limit < len(found),
        }
        return httpx.Response(200, json=body)

    def params(self) -> list[dict[str, str]]:
        return [dict(request.url.params) for request in self.requests]


def pd_error(status: int, message: str, *errors: str, **headers: str) -> httpx.Response:
    body = {"error": {"message": message, "code": 2001, "errors": list(errors)}}
    return httpx.Response(status, json=body, headers=headers)


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PAGERDUTY_TOKEN", TOKEN)
    return TOKEN


@pytest.fixture
def fake(respx_router, token) -> FakePagerDuty:
    fake = FakePagerDuty()
    respx_router.get(f"{API}/incidents").mock(side_effect=fake)
    return fake


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    """The PagerDuty client sleeps on a fake clock: retries are instant and exact."""
    fake = FakeTime()
    original = pagerduty.PagerDutyClient.__init__

    def init(self: pagerduty.PagerDutyClient, *args: Any, **kwargs: Any) -> None:
        original(self, *args, sleep=fake.sleep, clock=fake.clock, **kwargs)

    monkeypatch.setattr(pagerduty.PagerDutyClient, "__init__", init)
    return fake


def stored(db: Path) -> dict[str, Incident]:
    with open_store(str(db), create=False) as store:
        return {i.id: i for i in store.list_incidents()}


def run(dora, *args: str):
    return dora("fetch", "pagerduty", *args)


def test_the_old_name_still_works_and_is_no_longer_listed(fake, dora, db_path):
    fake.incidents = [incident("PINC001")]

    old = dora("incident", "import-pagerduty")
    listed = dora("incident", "--help")

    assert old.exit_code == 0, old.stderr
    assert list(stored(db_path)) == ["pagerduty-PINC001"]
    assert "import-pagerduty" not in listed.stdout


# --- what is asked of PagerDuty -------------------------------------------------------------


def test_asks_with_the_token_the_api_version_and_the_window_in_utc(fake, dora):
    result = run(dora)

    assert result.exit_code == 0, result.stderr
    [request] = fake.requests
    assert request.method == "GET"
    assert request.headers["Authorization"] == f"Token token={TOKEN}"
    assert request.headers["Accept"] == "application/vnd.pagerduty+json;version=2"
    assert request.headers["User-Agent"].startswith("dora/")
    assert fake.params() == [
        {
            **WINDOW,
            "time_zone": "UTC",
            "sort_by": "created_at:asc",
            "limit": "100",
            "offset": "0",
            "total": "true",
        }
    ]


def test_pages_through_offsets_until_more_is_false(fake, dora, db_path):
    fake.incidents = [
        incident(f"PINC{n:03}", number=n, created=f"2026-11-01T00:{n // 60:02}:{n % 60:02}Z")
        for n in range(250)
    ]

    result = run(dora)

    assert result.exit_code == 0, result.stderr
    assert [(p["offset"], p["limit"], p.get("total")) for p in fake.params()] == [
        ("0", "100", "true"),
        ("100", "100", None),
        ("200", "100", None),
    ]
    assert count(db_path, "incidents") == 250
    assert result.stderr.splitlines() == [
        "Fetched 250 incidents from PagerDuty in 3 requests.",
        f"Imported 250 events from PagerDuty into {db_path}: 250 new, 0 updated, 0 unchanged.",
    ]
    assert result.stdout == ""


def test_a_window_longer_than_180_days_is_asked_for_in_chunks(fake, dora, db_path):
    fake.incidents = [
        incident("POLD", created="2025-11-01T00:00:00Z"),
        incident("PMID", created="2026-06-01T00:00:00Z"),
        incident("PNEW", created="2026-11-01T00:00:00Z"),
    ]

    result = run(dora, "--since", "2025-10-01", "--until", "2026-11-24T12:00:00Z")

    assert result.exit_code == 0, result.stderr
    assert [(p["since"], p["until"]) for p in fake.params()] == [
        ("2025-10-01T00:00:00Z", "2026-03-30T00:00:00Z"),
        ("2026-03-30T00:00:00Z", "2026-09-26T00:00:00Z"),
        ("2026-09-26T00:00:00Z", "2026-11-24T12:00:00Z"),
    ]
    assert sorted(stored(db_path)) == [
        "pagerduty-PMID__",
        "pagerduty-PNEW__",
        "pagerduty-POLD__",
    ]


def test_since_takes_a_duration_as_dora_metrics_does(fake, dora):
    result = run(dora, "--since", "90d")

    assert result.exit_code == 0, result.stderr
    assert [(p["since"], p["until"]) for p in fake.params()] == [
        ("2026-08-26T12:00:00Z", "2026-11-24T12:00:00Z")
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "90"], "--since: '90' has no unit: write 90d, w, h or m"),
        (["--since", "0d"], "--since: the window must not be empty"),
        (["--until", "2026-01-01", "--since", "2026-02-01"], "--since: 2026-02-01T00:00:00Z"),
    ],
)
def test_a_bad_window_is_a_usage_error_as_for_dora_metrics(fake, dora, args, message):
    result = run(dora, *args)

    assert result.exit_code == 2
    assert result.stderr.startswith(f"dora: error: {message}")
    assert fake.requests == []


def test_more_than_10000_incidents_in_a_range_are_fetched_in_halves(
    fake, dora, db_path, monkeypatch
):
    # PagerDuty's limit, scaled down so that the test is quick: the logic is the same
    monkeypatch.setattr(pagerduty, "MAX_RESULTS", 300)
    fake.counts = False  # no total: the limit is only found by paging up to it
    start = parse("2026-11-01T00:00:00Z")
    fake.incidents = [
        incident(f"PX{n:05}", created=timeparse.format_iso(start + timedelta(minutes=5 * n)))
        for n in range(700)
    ]

    result = run(dora)

    assert result.exit_code == 0, result.stderr
    assert all(int(p["offset"]) + int(p["limit"]) <= 300 for p in fake.params())
    assert len(stored(db_path)) == 700
    assert result.stderr.splitlines()[1].startswith("Imported 700 events from PagerDuty")


def test_a_range_whose_total_passes_10000_is_split_before_paging(fake, dora, db_path, monkeypatch):
    monkeypatch.setattr(pagerduty, "MAX_RESULTS", 300)
    start = parse("2026-11-01T00:00:00Z")
    fake.incidents = [
        incident(f"PX{n:05}", created=timeparse.format_iso(start + timedelta(minutes=5 * n)))
        for n in range(500)
    ]

    result = run(dora, "--since", "30d")

    assert result.exit_code == 0, result.stderr
    asked = [(p["since"], p["until"], p["offset"]) for p in fake.params()]
    assert asked[:2] == [  # the total, then the first half at once
        ("2026-10-25T12:00:00Z", "2026-11-24T12:00:00Z", "0"),
        ("2026-10-25T12:00:00Z", "2026-11-09T12:00:00Z", "0"),
    ]
    assert ("2026-11-09T12:00:00Z", "2026-11-24T12:00:00Z", "0") in asked
    assert ("2026-10-25T12:00:00Z", "2026-11-24T12:00:00Z", "100") not in asked
    assert len(stored(db_path)) == 500


def test_a_second_with_more_than_10000_incidents_is_an_error_not_a_silent_cut(
    fake, dora, db_path, monkeypatch
):
    monkeypatch.setattr(pagerduty, "MAX_RESULTS", 300)
    fake.incidents = [incident(f"PX{n:05}", created="2026-11-01T00:00:00Z") for n in range(301)]

    result = run(dora)

    assert result.exit_code == 1
    assert result.stderr == (
        "dora: error: PagerDuty holds more than 300 incidents created from "
        "2026-11-01T00:00:00Z to 2026-11-01T00:00:01Z, more than it can list\n"
    )
    assert not db_path.exists()


# --- how incidents are mapped ----------------------------------------------------------------


def test_maps_a_resolved_incident_field_by_field(fake, dora, db_path):
    fake.incidents = [incident(priority="P1", teams=("Payments",))]

    result = run(dora)

    assert result.exit_code == 0, result.stderr
    assert stored(db_path)["pagerduty-PT4KHLK"].model_dump() == {
        "id": "pagerduty-PT4KHLK",
        "started_at": parse("2026-11-20T09:00:00Z"),
        "finished_at": parse("2026-11-20T10:30:00Z"),
        "env": None,
        "version": None,
        "team": None,  # only with --team-from-pagerduty
        "git": None,
        "custom_tags": [],
        "services": ["Checkout API"],
        "name": "The server is on fire.",
        "severity": "P1",
        "deployment_id": None,
    }


@pytest.mark.parametrize("status", ["triggered", "acknowledged"])
def test_triggered_and_acknowledged_incidents_stay_open(fake, dora, db_path, status):
    fake.incidents = [incident(status=status, resolved=None)]

    result = run(dora)

    assert result.exit_code == 0, result.stderr
    assert stored(db_path)["pagerduty-PT4KHLK"].is_open


def test_a_resolved_incident_without_resolved_at_finishes_at_its_last_status_change(
    fake, dora, db_path
):
    item = incident()
    del item["resolved_at"]
    item["last_status_change_at"] = "2026-11-20T11:00:00Z"
    fake.incidents = [item]

    result = run(dora)

    assert result.exit_code == 0, result.stderr
    assert stored(db_path)["pagerduty-PT4KHLK"].finished_at == parse("2026-11-20T11:00:00Z")


def test_priority_is_the_severity_and_urgency_stands_in_without_one(fake, dora, db_path):
    fake.incidents = [
        incident("PWITHPRIORITY", priority="P2", urgency="high"),
        incident("PNOPRIORITY", priority=None, urgency="low"),
    ]

    run(dora)

    incidents = stored(db_path)
    assert incidents["pagerduty-PWITHPRIORITY"].severity == "P2"
    assert incidents["pagerduty-PNOPRIORITY"].severity == "low"


def test_ids_are_prefixed_and_padded_to_16_characters_with_underscores(fake, dora, db_path):
    fake.incidents = [incident("P1"), incident("PABCDEF"), incident("Q0XYZ12345ABCDEF")]

    run(dora)

    assert sorted(stored(db_path)) == [
        "pagerduty-P1____",
        "pagerduty-PABCDEF",
        "pagerduty-Q0XYZ12345ABCDEF",
    ]


def test_service_map_renames_mapped_services_and_others_keep_their_name(fake, dora, db_path):
    fake.incidents = [
        incident("PMAPPED1", service="Checkout API (prod)"),
        incident("PMAPPED2", service="Checkout API (prod)"),
        incident("PUNMAPPED", service="Legacy Mailer"),
    ]

    result = run(dora, "--service-map", "Checkout API (prod)=checkout", "--service-map", "X=y")

    assert result.exit_code == 0, result.stderr
    services = {id: i.services for id, i in stored(db_path).items()}
    assert services == {
        "pagerduty-PMAPPED1": ["checkout"],
        "pagerduty-PMAPPED2": ["checkout"],
        "pagerduty-PUNMAPPED": ["Legacy Mailer"],
    }
    assert result.stderr.splitlines()[:2] == [
        "dora: warning: PagerDuty service 'Legacy Mailer' is not in the service map; "
        "its 1 incident keeps that name",
        "dora: warning: --service-map: no PagerDuty incident in the window has service 'X'",
    ]


def test_without_a_service_map_there_is_no_warning_about_unmapped_services(fake, dora):
    fake.incidents = [incident(service="Legacy Mailer")]

    result = run(dora)

    assert "warning" not in result.stderr


def test_a_service_map_entry_splits_at_its_last_equals_sign(fake, dora, db_path):
    fake.incidents = [incident(service="a=b")]

    run(dora, "--service-map", " a=b = mailer ")

    assert stored(db_path)["pagerduty-PT4KHLK"].services == ["mailer"]


@pytest.mark.parametrize("value", ["checkout", "=checkout", "Checkout API=", " = "])
def test_a_malformed_service_map_is_a_usage_error(fake, dora, db_path, value):
    result = run(dora, "--service-map", value)

    assert result.exit_code == 2
    assert result.stderr == (
        f"dora: error: --service-map: '{value}' is not 'PagerDuty name=service'\n"
    )
    assert fake.requests == []
    assert not db_path.exists()


def test_a_service_mapped_twice_is_a_usage_error(fake, dora):
    result = run(dora, "--service-map", "A=x", "--service-map", "A=y")

    assert result.exit_code == 2
    assert result.stderr == "dora: error: --service-map: 'A' is mapped twice\n"


def test_team_from_pagerduty_takes_the_first_team(fake, dora, db_path):
    fake.incidents = [
        incident("PTWOTEAMS", teams=("Payments", "SRE")),
        incident("PNOTEAM", teams=()),
    ]

    result = run(dora, "--team-from-pagerduty")

    assert result.exit_code == 0, result.stderr
    teams = {id: i.team for id, i in stored(db_path).items()}
    assert teams == {"pagerduty-PTWOTEAMS": "Payments", "pagerduty-PNOTEAM": None}


def test_env_is_set_on_every_incident_so_that_metrics_for_the_env_count_them(fake, dora, db_path):
    fake.incidents = [incident("PONE"), incident("PTWO", status="triggered", resolved=None)]

    result = run(dora, "--env", "prod")
    metrics = dora("metrics", "--env", "prod", "--by", "none", "--format", "json")

    assert result.exit_code == 0, result.stderr
    assert {id: i.env for id, i in stored(db_path).items()} == {
        "pagerduty-PONE__": "prod",
        "pagerduty-PTWO__": "prod",
    }
    assert json.loads(metrics.stdout)["total"]["failures"] == 2


def test_team_is_set_on_every_incident_and_owns_one_without_a_service(fake, dora, db_path):
    fake.incidents = [incident("PWITHTEAM", teams=("Payments",)), incident("PNOSERVICE")]
    fake.incidents[1]["service"] = None

    result = run(dora, "--team", "checkout")

    assert result.exit_code == 0, result.stderr
    assert {id: (i.team, i.services) for id, i in stored(db_path).items()} == {
        "pagerduty-PWITHTEAM": ("checkout", ["Checkout API"]),
        "pagerduty-PNOSERVICE": ("checkout", []),
    }


def test_with_team_from_pagerduty_team_is_for_the_incidents_pagerduty_gives_none(
    fake, dora, db_path
):
    fake.incidents = [incident("PTWOTEAMS", teams=("Payments", "SRE")), incident("PNOTEAM")]

    result = run(dora, "--team-from-pagerduty", "--team", "platform")

    assert result.exit_code == 0, result.stderr
    teams = {id: i.team for id, i in stored(db_path).items()}
    assert teams == {"pagerduty-PTWOTEAMS": "Payments", "pagerduty-PNOTEAM": "platform"}


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--env", ""), ("--team", "   "), ("--env", "prod\nstaging"), ("--team", "a\x7fb")],
)
def test_a_bad_env_or_team_is_refused_as_incident_open_refuses_it(fake, dora, db_path, flag, value):
    result = run(dora, flag, value)
    by_open = dora("incident", "open", "--service", "api", flag, value)

    assert result.exit_code == by_open.exit_code == 2
    assert result.stderr == by_open.stderr
    assert result.stderr.startswith(f"dora: error: {flag}: must ")
    assert len(result.stderr.splitlines()) == 1
    assert fake.requests == []
    assert not db_path.exists()


def test_an_env_with_spaces_around_it_is_stored_trimmed(fake, dora, db_path):
    fake.incidents = [incident()]

    run(dora, "--env", " prod ", "--team", " sre ")

    stored_incident = stored(db_path)["pagerduty-PT4KHLK"]
    assert (stored_incident.env, stored_incident.team) == ("prod", "sre")


def record_services(dora, *, deployed: str, opened: str | None = None) -> None:
    """A deployment of ``deployed`` and an incident of ``opened`` recorded with dora."""
    done = dora("deployment", "--service", deployed, "--started-at", "-1h", "--skip-git")
    assert done.exit_code == 0, done.stderr
    if opened is not None:
        done = dora("incident", "open", "--service", opened, "--skip-git")
        assert done.exit_code == 0, done.stderr


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("dora: warning:")]


def test_a_service_differing_only_in_case_from_a_recorded_one_gets_a_warning_after_the_import(
    fake, dora, store_db
):
    record_services(dora, deployed="web")
    fake.incidents = [incident("PWEB1", service="Web"), incident("PWEB2", service="Web")]
    fake.incidents.append(incident("PNEW", service="Mailer"))

    dry = run(dora, "--dry-run")
    first = run(dora)
    again = run(dora)
    fixed = run(dora, "--service-map", "Web=web", "--service-map", "Mailer=Mailer")

    expected = (
        "dora: warning: PagerDuty service 'Web' differs only in case from the recorded "
        "service 'web', so 'dora metrics' counts them apart; import again with "
        '--service-map "Web=web" to merge them'
    )
    assert first.exit_code == again.exit_code == fixed.exit_code == 0, first.stderr
    assert warnings(dry.stderr) == [expected]  # a dry run warns as the import would
    assert dry.stderr.splitlines()[-1] == "Dry run: nothing was written."
    assert first.stderr.splitlines()[1].startswith("Imported 3 events from PagerDuty into ")
    assert first.stderr.splitlines()[2:] == [expected]
    assert again.stderr.splitlines()[2:] == [expected]  # the first import does not hide it
    assert warnings(fixed.stderr) == []
    assert fixed.stderr.splitlines()[-1].endswith(": 0 new, 2 updated, 1 unchanged.")
    services = rows(store_db, "SELECT DISTINCT service FROM incident_services ORDER BY 1")
    assert services == [{"service": "Mailer"}, {"service": "web"}]


def test_a_mapped_service_differing_only_in_case_names_the_pagerduty_service_to_map(
    fake, dora, store_db
):
    record_services(dora, deployed="api", opened="web")
    fake.incidents = [incident("PWEB", service="Web Frontend"), incident("PAPI", service="api")]

    result = run(dora, "--service-map", "Web Frontend=WEB", "--service-map", "api=api")

    assert result.exit_code == 0, result.stderr
    assert warnings(result.stderr) == [
        "dora: warning: service 'WEB' (PagerDuty's 'Web Frontend') differs only in case from "
        "the recorded service 'web', so 'dora metrics' counts them apart; import again with "
        '--service-map "Web Frontend=web" to merge them'
    ]


def test_a_service_recorded_exactly_gets_no_case_warning(fake, dora, db_path):
    record_services(dora, deployed="Web", opened="web")
    fake.incidents = [incident(service="Web")]

    result = run(dora)

    assert result.exit_code == 0, result.stderr
    assert warnings(result.stderr) == []


def test_a_title_on_several_lines_becomes_one_line(fake, dora, db_path):
    fake.incidents = [incident(title="Disk full\non db-1\t(prod)")]

    run(dora)

    assert stored(db_path)["pagerduty-PT4KHLK"].name == "Disk full on db-1 (prod)"


def test_an_incident_that_fails_the_checks_is_skipped_with_a_warning(fake, dora, db_path):
    fake.incidents = [
        incident("PGOOD"),
        incident("PFUTURE", number=77, created="2026-11-24T13:00:00Z", status="triggered"),
    ]

    result = run(dora, "--until", "2026-11-25")

    assert result.exit_code == 0, result.stderr
    assert list(stored(db_path)) == ["pagerduty-PGOOD_"]
    assert result.stderr.splitlines() == [
        "dora: warning: skipped PagerDuty incident #77 PFUTURE: started_at: "
        "2026-11-24T13:00:00Z is in the future (at most 5 minutes of clock skew is allowed)",
        "Fetched 2 incidents from PagerDuty in 1 request; skipped 1 that fail dora's checks.",
        f"Imported 1 event from PagerDuty into {db_path}: 1 new, 0 updated, 0 unchanged.",
    ]


# --- re-running --------------------------------------------------------------------------------


def test_importing_again_updates_resolved_incidents_and_duplicates_nothing(fake, dora, db_path):
    fake.incidents = [
        incident("PSTILLOPEN", status="triggered", resolved=None),
        incident("PRESOLVES", status="acknowledged", resolved=None),
        incident("PDONE"),
    ]
    first = run(dora)
    fake.incidents[1] = incident("PRESOLVES", resolved="2026-11-21T08:00:00Z")

    again = run(dora)

    assert first.exit_code == again.exit_code == 0
    assert again.stderr.splitlines()[-1] == (
        f"Imported 3 events from PagerDuty into {db_path}: 0 new, 1 updated, 2 unchanged."
    )
    assert rows(db_path, "SELECT id, finished_at FROM incidents ORDER BY id") == [
        {"id": "pagerduty-PDONE_", "finished_at": timeparse.to_ns(parse("2026-11-20T10:30Z"))},
        {
            "id": "pagerduty-PRESOLVES",
            "finished_at": timeparse.to_ns(parse("2026-11-21T08:00:00Z")),
        },
        {"id": "pagerduty-PSTILLOPEN", "finished_at": None},
    ]
    assert count(db_path, "incident_services") == 3


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_without_a_token_it_is_a_usage_error_naming_pagerduty_token(
    respx_router, dora, db_path, monkeypatch, value
):
    if value is None:
        monkeypatch.delenv("PAGERDUTY_TOKEN", raising=False)
    else:
        monkeypatch.setenv("PAGERDUTY_TOKEN", value)

    result = run(dora)

    assert result.exit_code == 2
    assert result.stderr == (
        "dora: error: PAGERDUTY_TOKEN is not set: give it a PagerDuty REST API key\n"
    )
    assert not respx_router.calls
    assert not db_path.exists()


def test_pagerduty_api_url_replaces_the_default(respx_router, token, dora, monkeypatch):
    monkeypatch.setenv("PAGERDUTY_API_URL", "https://api.eu.pagerduty.com/")
    fake = FakePagerDuty([incident()])
    respx_router.get("https://api.eu.pagerduty.com/incidents").mock(side_effect=fake)

    result = run(dora)

    assert result.exit_code == 0, result.stderr
    assert len(fake.requests) == 1


@pytest.mark.parametrize("value", ["api.eu.pagerduty.com", "ftp://example.com", "http://"])
def test_a_bad_pagerduty_api_url_is_a_usage_error_naming_it(
    respx_router, token, dora, monkeypatch, value
):
    monkeypatch.setenv("PAGERDUTY_API_URL", value)

    result = run(dora)

    assert result.exit_code == 2
    assert result.stderr == (
        f"dora: error: PAGERDUTY_API_URL: '{value}' is not an http:// or https:// URL with a host\n"
    )
    assert not respx_router.calls


# --- when PagerDuty refuses or fails -------------------------------------------------------------


def test_a_429_is_retried_after_the_wait_pagerduty_asks_for(respx_router, token, dora, fake_time):
    fake = FakePagerDuty([incident()])
    answers = iter([pd_error(429, "Rate Limit Exceeded", **{"Retry-After": "2"})])
    route = respx_router.get(f"{API}/incidents").mock(
        side_effect=lambda request: next(answers, None) or fake(request)
    )

    result = run(dora)

    assert result.exit_code == 0, result.stderr
    assert len(route.calls) == 2
    assert fake_time.sleeps == [2.0]
    assert result.stderr.splitlines()[0] == "Fetched 1 incident from PagerDuty in 1 request."


@pytest.mark.parametrize("trouble", [500, 502, 503, 408, httpx.ConnectError])
def test_a_transient_failure_is_retried(respx_router, token, dora, db_path, fake_time, trouble):
    fake = FakePagerDuty([incident()])
    first: Any = httpx.Response(trouble) if isinstance(trouble, int) else trouble("refused")
    answers = iter([first])

    def answer(request: httpx.Request) -> httpx.Response:
        item = next(answers, None)
        if isinstance(item, Exception):
            raise item
        return item or fake(request)

    route = respx_router.get(f"{API}/incidents").mock(side_effect=answer)

    result = run(dora)

    assert result.exit_code == 0, result.stderr
    assert len(route.calls) == 2
    assert count(db_path, "incidents") == 1


def test_retries_that_run_out_say_how_many_attempts_and_record_nothing(
    respx_router, token, dora, db_path, fake_time, monkeypatch
):
    monkeypatch.setenv("DORA_RETRY_BUDGET", "5")
    route = respx_router.get(f"{API}/incidents").mock(
        return_value=pd_error(503, "Service Unavailable")
    )

    result = run(dora)

    attempts = len(route.calls)
    assert result.exit_code == 1
    assert attempts >= 2
    assert result.stderr.startswith(
        f"dora: error: PagerDuty did not list the incidents after {attempts} attempts in "
    )
    assert result.stderr.endswith(": 503 Service Unavailable: Service Unavailable\n")
    assert len(result.stderr.splitlines()) == 1
    assert sum(fake_time.sleeps) < 5
    assert not db_path.exists()


def test_a_401_says_the_token_is_refused_and_never_shows_it(respx_router, token, dora, db_path):
    body = {"error": {"message": f"Authentication Required for {TOKEN}", "code": 2006}}
    route = respx_router.get(f"{API}/incidents").mock(return_value=httpx.Response(401, json=body))

    result = run(dora, "--verbose")

    assert result.exit_code == 1
    assert len(route.calls) == 1  # a 401 is not retried
    assert result.stderr.splitlines()[-1] == (
        "dora: error: PagerDuty refused the token (401 Unauthorized); check PAGERDUTY_TOKEN"
    )
    assert TOKEN not in result.stdout + result.stderr
    assert not db_path.exists()


def test_a_403_says_the_token_may_not_read_incidents(respx_router, token, dora):
    respx_router.get(f"{API}/incidents").mock(
        return_value=pd_error(403, "Access Denied", "The token cannot read incidents")
    )

    result = run(dora)

    assert result.exit_code == 1
    assert result.stderr == (
        "dora: error: PagerDuty did not let the token list incidents (403 Forbidden: "
        "Access Denied: The token cannot read incidents); give PAGERDUTY_TOKEN a key that "
        "may read them\n"
    )


def test_another_4xx_shows_pagerdutys_own_message_in_one_line(respx_router, token, dora):
    respx_router.get(f"{API}/incidents").mock(
        return_value=pd_error(400, "Invalid Input Provided", "Since\nis invalid", "Until too")
    )

    result = run(dora)

    assert result.exit_code == 1
    assert result.stderr == (
        "dora: error: PagerDuty refused to list the incidents (400 Bad Request: "
        "Invalid Input Provided: Since is invalid; Until too)\n"
    )


def test_a_token_quoted_back_by_the_server_is_masked(respx_router, token, dora):
    respx_router.get(f"{API}/incidents").mock(
        return_value=pd_error(400, f"Unknown token {TOKEN}", f"token={TOKEN}")
    )

    result = run(dora, "--verbose")

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "dora: error: PagerDuty refused to list the incidents (400 Bad Request: "
        "Unknown token ***: token=***)"
    )
    assert TOKEN not in result.stderr


def test_a_404_points_at_pagerduty_api_url(respx_router, token, dora, monkeypatch):
    monkeypatch.setenv("PAGERDUTY_API_URL", "https://proxy.example.com/pd")
    respx_router.get("https://proxy.example.com/pd/incidents").mock(
        return_value=httpx.Response(404, text="Not Found")
    )

    result = run(dora)

    assert result.exit_code == 1
    assert result.stderr == (
        "dora: error: no PagerDuty API at https://proxy.example.com/pd "
        "(404 Not Found: Not Found); check PAGERDUTY_API_URL\n"
    )


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        (httpx.Response(200, html="<html>login</html>"), "not JSON but text/html; charset=utf-8"),
        (httpx.Response(200, json=[1, 2]), "no 'incidents' list"),
        (httpx.Response(200, json={"incidents": {}}), "no 'incidents' list"),
        (httpx.Response(200, json={"incidents": [], "more": "yes"}), "'more' is not true or false"),
        (httpx.Response(200, json={"incidents": [{"title": "x"}]}), "an incident without an id"),
    ],
)
def test_an_answer_that_is_not_a_page_of_incidents_is_one_line(
    respx_router, token, dora, db_path, answer, what
):
    respx_router.get(f"{API}/incidents").mock(return_value=answer)

    result = run(dora)

    assert result.exit_code == 1
    assert result.stderr == (
        f"dora: error: the answer of {API}/incidents is not a page of PagerDuty incidents "
        f"({what}); check PAGERDUTY_API_URL\n"
    )
    assert not db_path.exists()


def test_nothing_is_recorded_when_a_later_page_fails(respx_router, token, dora, db_path):
    fake = FakePagerDuty([incident(f"PINC{n:03}") for n in range(150)])

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.params["offset"] == "100":
            return pd_error(400, "Invalid Input Provided")
        return fake(request)

    respx_router.get(f"{API}/incidents").mock(side_effect=answer)

    result = run(dora)

    assert result.exit_code == 1
    assert not db_path.exists()


# --- with the datadog backend ----------------------------------------------------------------


def test_with_the_datadog_backend_the_incidents_are_posted_after_being_saved(
    fake, dora, db_path, respx_router, monkeypatch
):
    monkeypatch.setenv("DATADOG_API_KEY", "0123456789abcdef-key")
    fake.incidents = [incident("PDONE", priority="P1"), incident("POPEN", status="triggered")]
    posted = respx_router.post("https://api.datadoghq.com/api/v2/dora/failure").mock(
        return_value=httpx.Response(202)
    )

    result = run(dora, "--backend", "datadog")

    assert result.exit_code == 0, result.stderr
    bodies = {
        body["id"]: body
        for body in (json.loads(c.request.content)["data"]["attributes"] for c in posted.calls)
    }
    assert bodies == {
        "pagerduty-PDONE_": {
            "id": "pagerduty-PDONE_",
            "services": ["Checkout API"],
            "name": "The server is on fire.",
            "severity": "P1",
            "started_at": timeparse.to_ns(parse("2026-11-20T09:00:00Z")),
            "finished_at": timeparse.to_ns(parse("2026-11-20T10:30:00Z")),
        },
        "pagerduty-POPEN_": {
            "id": "pagerduty-POPEN_",
            "services": ["Checkout API"],
            "name": "The server is on fire.",
            "severity": "high",
            "started_at": timeparse.to_ns(parse("2026-11-20T09:00:00Z")),
        },
    }
    assert rows(db_path, "SELECT state FROM outbox") == [{"state": "delivered"}] * 2
    assert result.stderr.splitlines()[-1] == "Sent 2 events to https://api.datadoghq.com."


def test_the_datadog_backend_without_its_key_imports_and_keeps_the_incidents_queued(
    fake, dora, db_path
):
    fake.incidents = [incident("PONE"), incident("PTWO", number=2)]

    result = run(dora, "--backend", "datadog")

    assert result.exit_code == 1
    imported = count(db_path, "incidents")
    assert imported == 2
    assert result.stderr.splitlines()[-1] == (
        "dora: error: no Datadog API key is set (DD_API_KEY or DATADOG_API_KEY): the "
        f"{imported} events are kept in {db_path}; 'dora push' will send them once one is"
    )
    assert count(db_path, "outbox") == imported


# --- the library -------------------------------------------------------------------------------


def test_event_id_pads_short_pagerduty_ids():
    assert pagerduty.event_id("P1") == "pagerduty-P1____"
    assert pagerduty.event_id("PT4KHLK") == "pagerduty-PT4KHLK"


def test_convert_returns_warnings_instead_of_raising():
    raw = [incident("PNOSERVICE"), incident("PBAD", created="yesterday")]
    raw[0]["service"] = None

    incidents, warnings = pagerduty.convert(raw, service_map={})

    assert incidents == []
    assert warnings == [
        "skipped PagerDuty incident #1234 PNOSERVICE: services: name at least one service, "
        "or a team",
        "skipped PagerDuty incident #1234 PBAD: started_at: 'yesterday' is not a timestamp: "
        f"{timeparse.FORMS_HINT}",
    ]


def test_the_account_comes_from_the_environment_and_hides_its_token():
    where = pagerduty.account({"PAGERDUTY_TOKEN": f" {TOKEN} "})

    assert where == pagerduty.Account("https://api.pagerduty.com", TOKEN)
    assert TOKEN not in repr(where)


def test_a_token_with_spaces_is_a_usage_error():
    with pytest.raises(UsageError) as raised:
        pagerduty.account({"PAGERDUTY_TOKEN": "two words"})

    assert raised.value.message == "PAGERDUTY_TOKEN: a token is printable ASCII without spaces"


def test_hidden_characters_in_pagerduty_names_are_dropped_not_a_reason_to_skip(fake, dora, db_path):
    fake.incidents = [
        incident("PHIDDEN", title="Checkout\u200b down \u202eagain", service="We\u200bb")
    ]

    result = run(dora)

    assert result.exit_code == 0, result.stderr
    assert rows(db_path, "SELECT name FROM incidents") == [{"name": "Checkout down again"}]
    assert rows(db_path, "SELECT service FROM incident_services") == [{"service": "Web"}]


def test_a_dry_run_prints_the_records_import_reads_and_writes_nothing(fake, dora, db_path):
    fake.incidents = [
        incident("PINC001", priority="P1", teams=("SRE",)),
        incident("PINC002", status="acknowledged", resolved=None, created="2026-11-21T08:00:00Z"),
    ]

    result = run(dora, "--dry-run", "--env", "prod", "--service-map", "Checkout API=checkout")

    assert result.exit_code == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {
            "type": "incident",
            "id": "pagerduty-PINC001",
            "services": ["checkout"],
            "name": "The server is on fire.",
            "severity": "P1",
            "env": "prod",
            "started_at": "2026-11-20T09:00:00Z",
            "finished_at": "2026-11-20T10:30:00Z",
        },
        {
            "type": "incident",
            "id": "pagerduty-PINC002",
            "services": ["checkout"],
            "name": "The server is on fire.",
            "severity": "high",
            "env": "prod",
            "started_at": "2026-11-21T08:00:00Z",
        },
    ]
    assert "Dry run: nothing was written." in result.stderr
    assert not db_path.exists()
    # what it prints, 'dora import' reads as the fetch would have stored it
    (db_path.parent / "dry.ndjson").write_text(result.stdout)
    assert dora("import", str(db_path.parent / "dry.ndjson")).exit_code == 0
    assert stored(db_path)["pagerduty-PINC001"].services == ["checkout"]
