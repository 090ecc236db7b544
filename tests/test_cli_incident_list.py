"""``dora incident list``'s filters as a user runs them, on both engines: --env, --team and
--since beside --service and --open."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def db_path(store_db):
    """Every test here runs on both engines."""
    return store_db


@pytest.fixture
def incidents(dora, db_path, frozen_now):
    """Four incidents of 2026-11 (the clock stands at 2026-11-24 12:00 UTC)."""
    for id, service, env, team, started in (
        ("incident-api-prod", "api", "prod", "payments", "2026-11-24T09:00:00Z"),
        ("incident-api-staging", "api", "staging", "payments", "2026-11-20T09:00:00Z"),
        ("incident-web-prod", "web", "prod", "edge", "2026-11-10T09:00:00Z"),
        ("incident-db-dev-1", "db", "dev", "data", "2026-10-01T09:00:00Z"),
    ):
        result = dora(
            "incident", "open", "--id", id, "--service", service, "--env", env, "--team", team,
            "--started-at", started, "--finished-at", started.replace("T09", "T10"),
            "--name", f"{service} down",
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr


def ids(dora, *args: str) -> list[str]:
    result = dora("incident", "list", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return [incident["id"] for incident in json.loads(result.stdout)]


def test_env_keeps_the_incidents_of_that_environment(dora, incidents):
    result = dora("incident", "list", "--env", "prod")

    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "ID                 STARTED (UTC)     STATE    AFFECTS              ENV   NAME",
        "incident-api-prod  2026-11-24 09:00  took 1h  api (team payments)  prod  api down",
        "incident-web-prod  2026-11-10 09:00  took 1h  web (team edge)      prod  web down",
    ]
    assert result.stderr == ""


def test_env_and_team_are_repeatable_and_combine(dora, incidents):
    assert ids(dora, "--env", "prod", "--env", "dev") == [
        "incident-api-prod",
        "incident-web-prod",
        "incident-db-dev-1",
    ]
    assert ids(dora, "--team", "payments") == ["incident-api-prod", "incident-api-staging"]
    assert ids(dora, "--team", "edge", "--team", "data") == [
        "incident-web-prod",
        "incident-db-dev-1",
    ]
    assert ids(dora, "--env", "prod", "--team", "payments", "--service", "api") == [
        "incident-api-prod"
    ]


def test_since_a_length_counts_back_from_now(dora, incidents):
    assert ids(dora, "--since", "7d") == ["incident-api-prod", "incident-api-staging"]
    assert ids(dora, "--since", "30d") == [
        "incident-api-prod",
        "incident-api-staging",
        "incident-web-prod",
    ]


def test_since_a_time_keeps_those_started_at_or_after_it_and_reads_it_as_utc(dora, incidents):
    assert ids(dora, "--since", "2026-11-20T09:00:00Z") == [
        "incident-api-prod",
        "incident-api-staging",
    ]
    assert ids(dora, "--since", "2026-11-20T09:00:01") == ["incident-api-prod"]  # no zone: UTC
    assert ids(dora, "--since", "-2d", "--env", "staging") == []


def test_no_match_says_so_on_stderr(dora, incidents, db_path):
    result = dora("incident", "list", "--team", "nobody")

    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == f"No incidents match in {db_path}.\n"


def test_no_open_match_says_so(dora, incidents, db_path):
    result = dora("incident", "list", "--open", "--env", "prod")

    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == f"No open incidents match in {db_path}.\n"


def test_a_bad_since_is_a_usage_error_naming_the_flag(dora, incidents):
    result = dora("incident", "list", "--since", "yesterday")

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "dora: error: --since: 'yesterday' is not a timestamp: use ISO 8601 "
        "(2026-11-24T09:30:00Z), Unix time in s, ms or ns, 'now', or an offset such as -15m\n"
    )


def test_an_empty_filter_is_a_usage_error(dora, incidents):
    result = dora("incident", "list", "--team", " ")

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "dora: error: --team: must not be empty\n"


def test_a_bad_since_is_refused_before_the_store_is_looked_for(dora, tmp_path):
    missing = tmp_path / "typo" / "dora.db"

    result = dora("incident", "list", "--since", "0d", "--db", str(missing))

    assert result.exit_code == 2
    assert result.stderr == "dora: error: --since: the window must not be empty\n"
    assert not missing.parent.exists()


def test_a_since_in_the_future_is_refused_against_now(dora, incidents):
    result = dora("incident", "list", "--since", "2030-01-01")

    assert result.exit_code == 2
    assert result.stderr == (
        "dora: error: --since: 2030-01-01T00:00:00Z is not before now (2026-11-24T12:00:00Z)\n"
    )
