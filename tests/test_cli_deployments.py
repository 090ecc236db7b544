"""``dora deployment list`` and ``show`` as a user runs them, on both engines."""

from __future__ import annotations

import json

import pytest

from conftest import execute

V1A, V2, V3, V1B = "deploy-000000-v1a", "deploy-000001-v2", "deploy-000002-v3", "deploy-000003-v1b"


@pytest.fixture
def db_path(store_db):
    """Every test here runs on both engines."""
    return store_db


@pytest.fixture(autouse=True)
def terminal_of_80_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")


def deploy(dora, id: str, version: str, finished: str, *args: str) -> str:
    result = dora(
        "deployment", "--id", id, "--service", "api", "--env", "prod", "--version", version,
        "--skip-git", "--started-at", f"-{_minutes(finished) + 30}m",
        "--finished-at", finished, *args,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return id


def _minutes(offset: str) -> int:
    """``-4h`` -> 240, ``-30m`` -> 30."""
    return int(offset[1:-1]) * (60 if offset.endswith("h") else 1)


@pytest.fixture
def rollback(dora, db_path, frozen_now):
    """V1 -> V2 -> V3 -> V1 of api in prod, an hour apart, the last an hour ago: V2 failed,
    remediated by the second V1 (a rollback)."""
    for id, version, finished in ((V1A, "V1", "-4h"), (V2, "V2", "-3h"), (V3, "V3", "-2h")):
        deploy(dora, id, version, finished)
    deploy(dora, V1B, "V1", "-1h")


def test_list_is_newest_first_and_names_the_rule_a_deployment_failed_by(dora, rollback):
    result = dora("deployment", "list")

    assert result.exit_code == 0
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "ID                 SERVICE  ENV   VERSION  FINISHED (UTC)    FAILED",
        "deploy-000003-v1b  api      prod  V1       2026-11-24 11:00",
        "deploy-000002-v3   api      prod  V3       2026-11-24 10:00",
        "deploy-000001-v2   api      prod  V2       2026-11-24 09:00  rollback",
        "deploy-000000-v1a  api      prod  V1       2026-11-24 08:00",
    ]


def test_a_narrow_terminal_drops_version_then_env_and_says_so(dora, rollback, monkeypatch):
    monkeypatch.setenv("COLUMNS", "55")

    result = dora("deployment", "list")

    assert result.exit_code == 0
    assert all(len(line) <= 55 for line in result.stdout.splitlines())
    assert result.stdout.splitlines()[0].split() == ["ID", "SERVICE", "FINISHED", "(UTC)", "FAILED"]
    assert result.stderr == (  # wrapped at the width, as the table is
        "Left out VERSION, ENV to fit the terminal; --format\njson has all.\n"
    )


def test_list_filters(dora, rollback):
    deploy(dora, "deploy-000004-web", "W1", "-30m", "--team", "edge")
    no_web = dora("deployment", "list", "--service", "web", "--format", "json")

    def ids(*args: str) -> list[str]:
        result = dora("deployment", "list", "--format", "json", *args)
        assert result.exit_code == 0, result.stderr
        return [d["id"] for d in json.loads(result.stdout)]

    assert json.loads(no_web.stdout) == []
    assert ids("--team", "edge") == ["deploy-000004-web"]
    assert ids("--env", "staging") == []
    assert ids("--failed") == [V2]
    assert ids("--since", "-150m") == ["deploy-000004-web", V1B, V3]
    assert ids("--since", "-5h", "--until", "-2h") == [V2, V1A]
    assert ids("--until", "2026-11-24T09:00:00Z") == [V1A]


def test_list_says_when_it_stops_at_the_limit(dora, rollback):
    limited = dora("deployment", "list", "--limit", "2", "--format", "json")
    failed = dora("deployment", "list", "--failed", "--limit", "1", "--format", "json")

    assert [d["id"] for d in json.loads(limited.stdout)] == [V1B, V3]
    assert limited.stderr == "Showing the newest 2; --limit 0 shows all.\n"
    assert [d["id"] for d in json.loads(failed.stdout)] == [V2]
    assert failed.stderr == ""


def test_list_json_has_every_field_and_the_verdict(dora, rollback):
    result = dora("deployment", "list", "--format", "json")

    by_id = {d["id"]: d for d in json.loads(result.stdout)}
    assert by_id[V2] == {
        "id": V2,
        "service": "api",
        "env": "prod",
        "team": None,
        "version": "V2",
        "started_at": "2026-11-24T08:30:00Z",
        "finished_at": "2026-11-24T09:00:00Z",
        "commit_sha": None,
        "repository_url": None,
        "custom_tags": [],
        "failed": True,
        "reasons": [
            {
                "rule": "rollback",
                "detail": f"rolled back by {V1B} to version V1, deployed by {V1A}",
                "remediated_by": V1B,
                "remediation_type": "rollback",
            }
        ],
        "remediated_by": [{"id": V1B, "type": "rollback"}],
        "remediates": [],
    }
    assert by_id[V1B]["failed"] is False
    assert by_id[V1B]["remediates"] == [V2]


def test_list_on_a_missing_store_creates_nothing(dora, db_path):
    result = dora("deployment", "list", "--failed")

    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == f"No failed deployments recorded in {db_path}.\n"
    assert not db_path.exists()


def test_show_says_why_it_failed_what_remediated_it_and_the_recovery(dora, rollback):
    result = dora("deployment", "show", "deploy-000001")

    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "deployment: deploy-000001-v2",
        "service:    api",
        "env:        prod",
        "team:       -",
        "version:    V2",
        "started:    2026-11-24 08:30 UTC",
        "finished:   2026-11-24 09:00 UTC",
        "commit:     -",
        "repository: -",
        "commits:    none recorded",
        "failed:     yes",
        f"  rollback: rolled back by {V1B} to version V1, deployed by",
        f"    {V1A}",
        f"remediated: by {V1B} (rollback)",
        "recovery:   2h (recovered 2026-11-24 11:00 UTC)",
        "remediates: none",
        "",
        "To correct it, change a field in this command and run it:",
        "dora deployment --id deploy-000001-v2 --service api --env prod --version V2 \\",
        "  --started-at 2026-11-24T08:30:00Z --finished-at 2026-11-24T09:00:00Z \\",
        "  --skip-git",
    ]
    assert all(len(line) <= 80 for line in result.stdout.splitlines())


def test_show_of_a_rollback_names_the_failure_it_remediates(dora, rollback):
    text = dora("deployment", "show", V1B)
    data = json.loads(dora("deployment", "show", V1B, "--format", "json").stdout)

    assert text.stdout.splitlines()[-7:-5] == ["failed:     no", f"remediates: {V2}"]
    assert data["failed"] is False
    assert data["remediates"] == [V2]
    assert data["recovery_time_seconds"] is None


def test_show_a_failure_from_a_linked_incident(dora, db_path, frozen_now):
    deploy(dora, V1A, "V1", "-3h")
    incident = dora(
        "incident", "open", "--service", "api", "--env", "prod", "--started-at", "-150m",
        "--finished-at", "-1h",
    ).stdout.strip()  # fmt: skip

    text = dora("deployment", "show", V1A)
    data = json.loads(dora("deployment", "show", V1A, "--format", "json").stdout)
    windowed = json.loads(
        dora("deployment", "show", V1A, "--format", "json", "--link-window", "10m").stdout
    )

    assert text.exit_code == 0
    assert text.stdout.split("\n\n")[0].splitlines()[10:] == [
        "failed:     yes",
        f"  incident: incident {incident} started 30m after it finished",
        "    (the latest deployment before it)",
        "remediated: no",
        "recovery:   2h (recovered 2026-11-24 11:00 UTC)",
        "remediates: none",
    ]
    assert data["failed"] is True
    assert data["incidents"] == [incident]
    assert data["recovered_at"] == "2026-11-24T11:00:00Z"
    assert data["recovery_time_seconds"] == 7200
    assert windowed["failed"] is False


def test_show_lists_commits_with_their_lead_times_and_the_median(dora, db_path, frozen_now):
    deploy(dora, V1A, "V1", "-1h")
    for sha, hours, subject in (
        ("a" * 40, 5, "first"),
        ("b" * 40, 3, "second"),
        ("c" * 40, 2, None),
    ):
        at = int((frozen_now.timestamp() - hours * 3600) * 10**9)
        execute(
            db_path,
            "INSERT INTO deployment_commits (deployment_id, sha, committed_at, subject) "
            "VALUES (?, ?, ?, ?)",
            (V1A, sha, at, subject),
        )  # fmt: skip

    text = dora("deployment", "show", V1A)
    data = json.loads(dora("deployment", "show", V1A, "--format", "json").stdout)

    assert text.stdout.splitlines()[9:13] == [
        "commits:    3, median lead time 2h",
        "  aaaaaaaaaaaa       4h  first",
        "  bbbbbbbbbbbb       2h  second",
        "  cccccccccccc       1h",
    ]
    assert [c["lead_time_seconds"] for c in data["commits"]] == [14400, 7200, 3600]
    assert data["median_lead_time_seconds"] == 7200


def test_show_lookup_errors_match_incident_resolve(dora, db_path, frozen_now):
    deploy(dora, "deploy-aaaa-00000001", "V1", "-2h")
    deploy(dora, "deploy-aaaa-00000002", "V2", "-1h")

    none = dora("deployment", "show", "zzzz")
    short = dora("deployment", "show", "dep")
    several = dora("deployment", "show", "deploy-aaaa")

    assert (none.exit_code, none.stdout) == (1, "")
    assert (
        none.stderr == f"dora: error: no deployment with an id starting with 'zzzz' in {db_path}\n"
    )
    assert short.exit_code == 2
    assert short.stderr == "dora: error: ID: give at least 4 characters of the id\n"
    assert several.exit_code == 2
    assert several.stderr == (
        "dora: error: ID: 'deploy-aaaa' matches several deployments "
        "(deploy-aaaa-00000001, deploy-aaaa-00000002); give more of it\n"
    )


def test_show_on_a_missing_store_is_an_error_that_creates_nothing(dora, db_path):
    result = dora("deployment", "show", "deploy-000001")

    assert result.exit_code == 1
    assert result.stderr == (
        f"dora: error: no store at {db_path}: nothing has been recorded there yet\n"
    )
    assert not db_path.exists()


def mark(db_path, deployment_id: str, *, failed: bool, remediation_version: str | None = None):
    """A mark as 'dora deployment mark' will store it."""
    execute(
        db_path,
        "INSERT INTO deployment_marks (deployment_id, failed, remediation_id, "
        "remediation_version, remediation_type, marked_at) VALUES (?, ?, NULL, ?, NULL, 0)",
        (deployment_id, int(failed), remediation_version),
    )


def test_marks_override_the_rules_as_in_the_reports(dora, db_path, rollback):
    mark(db_path, V2, failed=False)
    mark(db_path, V3, failed=True, remediation_version="V1")

    failed = dora("deployment", "list", "--failed", "--format", "json")
    cleared = dora("deployment", "show", V2)
    marked = json.loads(dora("deployment", "show", V3, "--format", "json").stdout)
    rework = json.loads(dora("deployment", "show", V1B, "--format", "json").stdout)

    assert [d["id"] for d in json.loads(failed.stdout)] == [V3]
    assert "failed:     no, cleared by a --stable mark" in cleared.stdout.splitlines()
    assert [r["rule"] for r in marked["reasons"]] == ["manual"]
    assert marked["remediated_by"] == [{"id": V1B, "type": "rollback"}]
    assert marked["recovery_time_seconds"] == 3600
    assert rework["remediates"] == [V3]


def test_a_long_service_name_is_cut_to_fit_80_columns(dora, db_path, frozen_now):
    dora(
        "deployment", "--id", V1A, "--service", "s" * 60, "--version", "V1", "--skip-git",
        "--started-at", "-2h", "--finished-at", "-1h",
    )  # fmt: skip

    result = dora("deployment", "list")

    assert result.stdout.splitlines() == [
        f"{'ID':<17}  {'SERVICE':<21}  ENV  VERSION  FINISHED (UTC)    FAILED",
        f"{V1A}  {'s' * 20}…       V1       2026-11-24 11:00",
    ]
    assert result.stderr == "Cut SERVICE (…) to fit the terminal; --format json has all.\n"
