"""The commands as a user runs them: exit codes, exact lines, and what lands in the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import count, git, make_repo, rows

SHA = "0123456789abcdef0123456789abcdef01234567"


def ns(iso: str) -> int:
    from dora import timeparse

    return timeparse.to_ns(timeparse.parse_timestamp(iso))


# --- dora deployment ------------------------------------------------------------------------


def test_records_a_deployment_with_no_configuration(dora, db_path, frozen_now):
    result = dora("deployment", "--service", "api", "--env", "prod", "--started-at", "-15m")

    assert result.exit_code == 0, result.stderr
    [row] = rows(db_path, "SELECT * FROM deployments")
    assert result.stdout == f"{row['id']}\n"
    assert result.stderr.splitlines()[-1] == (
        f"Recorded deployment {row['id']} (api, env prod) in {db_path}"
    )
    assert row["service"] == "api"
    assert row["env"] == "prod"
    assert row["started_at"] == ns("2026-11-24T11:45:00Z")
    assert row["finished_at"] == ns("2026-11-24T12:00:00Z")  # defaults to now
    assert len(row["id"]) == 26


def test_deployment_stores_every_field(dora, db_path, frozen_now):
    result = dora(
        "deployment",
        "--service",
        "api",
        "--env",
        "prod",
        "--started-at",
        "2026-11-24T10:00:00Z",
        "--finished-at",
        "1795521600",
        "--version",
        "1.4.2",
        "--team",
        "payments",
        "--id",
        "deploy-2026-11-24-0001",
        "--git-repository-url",
        "https://github.com/o/r.git",
        "--git-commit-sha",
        SHA.upper(),
        "--custom-tags",
        "region:eu",
        "--custom-tags",
        "tier:1",
    )

    assert result.exit_code == 0, result.stderr
    assert result.stdout == "deploy-2026-11-24-0001\n"
    [row] = rows(db_path, "SELECT * FROM deployments")
    assert row == {
        "id": "deploy-2026-11-24-0001",
        "service": "api",
        "env": "prod",
        "version": "1.4.2",
        "team": "payments",
        "started_at": ns("2026-11-24T10:00:00Z"),
        "finished_at": 1795521600 * 10**9,
        "repository_url": "https://github.com/o/r.git",
        "commit_sha": SHA,
        "custom_tags": '["region:eu", "tier:1"]',
        "recorded_at": row["recorded_at"],
    }


def test_recording_the_same_id_again_updates_the_event(dora, db_path, frozen_now):
    args = ["deployment", "--service", "api", "--started-at", "-1h", "--id", "release-000000000042"]
    assert dora(*args, "--version", "1").exit_code == 0
    assert dora(*args, "--version", "2").exit_code == 0

    assert rows(db_path, "SELECT id, version FROM deployments") == [
        {"id": "release-000000000042", "version": "2"}
    ]


def test_service_and_env_come_from_dd_variables(dora, db_path, frozen_now, monkeypatch):
    monkeypatch.setenv("DD_SERVICE", "billing")
    monkeypatch.setenv("DD_ENV", "staging")

    assert dora("deployment", "--started-at", "-5m").exit_code == 0

    assert rows(db_path, "SELECT service, env FROM deployments") == [
        {"service": "billing", "env": "staging"}
    ]


def test_flags_beat_environment_beats_config_file(dora, db_path, frozen_now, monkeypatch, tmp_path):
    config = tmp_path / "dora.toml"
    config.write_text('service = "from-file"\nenv = "file-env"\nteam = "file-team"\n')
    monkeypatch.setenv("DORA_CONFIG", str(config))
    monkeypatch.setenv("DD_ENV", "env-env")

    assert dora("deployment", "--service", "from-flag", "--started-at", "-5m").exit_code == 0

    assert rows(db_path, "SELECT service, env, team FROM deployments") == [
        {"service": "from-flag", "env": "env-env", "team": "file-team"}
    ]


def test_db_flag_beats_dora_db(dora, tmp_path, frozen_now):
    other = tmp_path / "nested" / "dirs" / "other.db"

    result = dora("deployment", "--service", "api", "--started-at", "-5m", "--db", str(other))

    assert result.exit_code == 0
    assert count(other, "deployments") == 1
    assert not (tmp_path / "dora.db").exists()


def test_default_store_is_in_the_user_data_dir(dora, frozen_now, monkeypatch, isolated):
    monkeypatch.delenv("DORA_DB")

    result = dora("deployment", "--service", "api", "--started-at", "-5m")

    expected = isolated / "home" / ".local" / "share" / "dora" / "dora.db"
    assert result.exit_code == 0
    assert result.stderr.endswith(f" in {expected}\n")
    assert count(expected, "deployments") == 1


def test_dry_run_prints_the_datadog_body_and_writes_nothing(dora, db_path, frozen_now):
    result = dora(
        "deployment",
        "--service",
        "api",
        "--env",
        "prod",
        "--started-at",
        "2026-11-24T11:00:00Z",
        "--id",
        "deploy-000000000001",
        "--git-repository-url",
        "https://u:tok@github.com/o/r.git",
        "--git-commit-sha",
        SHA,
        "--custom-tags",
        "a:b",
        "--dry-run",
    )

    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "data": {
            "attributes": {
                "id": "deploy-000000000001",
                "service": "api",
                "env": "prod",
                "started_at": ns("2026-11-24T11:00:00Z"),
                "finished_at": ns("2026-11-24T12:00:00Z"),
                "git": {"repository_url": "https://github.com/o/r.git", "commit_sha": SHA},
                "custom_tags": ["a:b"],
            }
        }
    }
    assert result.stderr == (
        "Dry run: this body would be posted to /api/v2/dora/deployment; nothing was recorded.\n"
    )
    assert not db_path.exists()


# --- bad input: exit 2, one line naming the flag, nothing written ----------------------------

BAD_DEPLOYMENTS = [
    (
        [],
        "--started-at: required",
    ),
    (
        ["--started-at", "yesterday"],
        "--started-at: 'yesterday' is not a timestamp: use ISO 8601 (2026-11-24T09:30:00Z), "
        "Unix time in s, ms or ns, 'now', or an offset such as -15m",
    ),
    (
        ["--started-at", "2026-02-30T10:00:00Z"],
        "--started-at: '2026-02-30T10:00:00Z' is not a valid date and time "
        "(day is out of range for month)",
    ),
    (
        ["--started-at", ""],
        "--started-at: empty timestamp: use ISO 8601 (2026-11-24T09:30:00Z), "
        "Unix time in s, ms or ns, 'now', or an offset such as -15m",
    ),
    (
        ["--started-at", "-1h", "--finished-at", ""],
        "--finished-at: empty timestamp: use ISO 8601 (2026-11-24T09:30:00Z), "
        "Unix time in s, ms or ns, 'now', or an offset such as -15m",
    ),
    (
        ["--started-at", "-1h", "--git-commit-sha", ""],
        "--git-commit-sha: '' is not a full commit SHA: expected 40 or more hex characters",
    ),
    (
        ["--started-at", "-1h", "--git-repository-url", ""],
        "--git-repository-url: must not be empty",
    ),
    (
        ["--started-at", "-1h", "--version", "1.0\udcff"],
        "--version: must be UTF-8 text",
    ),
    (
        ["--started-at", "-1000000d"],
        "--started-at: '-1000000d' reaches back before 1970",
    ),
    (
        ["--started-at", "-1h", "--finished-at", "-2h"],
        "--finished-at: 2026-11-24T10:00:00Z is before the start (2026-11-24T11:00:00Z)",
    ),
    (
        ["--started-at", "2026-11-24T12:06:00Z"],
        "--started-at: 2026-11-24T12:06:00Z is in the future "
        "(at most 5 minutes of clock skew is allowed)",
    ),
    (
        ["--started-at", "-1h", "--git-commit-sha", "abc123"],
        "--git-commit-sha: 'abc123' is not a full commit SHA: expected 40 or more hex characters",
    ),
    (
        ["--started-at", "-1h", "--custom-tags", "team"],
        "--custom-tags: 'team' is not a key:value tag",
    ),
    (
        ["--started-at", "-1h", "--id", "too-short"],
        "--id: 'too-short' is not a valid id: use 16 to 128 characters of letters, digits, "
        "'.', '_', ':' and '-'",
    ),
    (
        ["--started-at", "-1h", "--env", " "],
        "--env: must not be empty",
    ),
    (
        ["--started-at", "-1h", *(a for i in range(101) for a in ("--custom-tags", f"k{i}:v"))],
        "--custom-tags: 101 tags given; at most 100 are allowed",
    ),
]


@pytest.mark.parametrize(("args", "message"), BAD_DEPLOYMENTS)
def test_bad_deployment_input_exits_2_with_one_line(dora, db_path, frozen_now, args, message):
    result = dora("deployment", "--service", "api", "--skip-git", *args)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"dora: error: {message}\n"
    assert not db_path.exists()


def test_missing_service_names_the_variable_too(dora, db_path):
    result = dora("deployment", "--started-at", "-5m")

    assert result.exit_code == 2
    assert result.stderr == "dora: error: --service: required (or set DD_SERVICE)\n"
    assert not db_path.exists()


def test_unknown_flag_is_a_usage_error_pointing_at_help(dora, db_path):
    result = dora("deployment", "--servise", "api")

    assert result.exit_code == 2
    assert result.stderr.startswith("dora: error: No such option: --servise")
    assert result.stderr.endswith("(see 'dora deployment --help')\n")
    assert result.stderr.count("\n") == 1


def test_bad_input_does_not_touch_an_existing_store(dora, db_path, frozen_now):
    assert dora("deployment", "--service", "api", "--started-at", "-1h").exit_code == 0
    before = db_path.read_bytes()

    assert dora("deployment", "--service", "api", "--started-at", "soon").exit_code == 2

    assert db_path.read_bytes() == before
    assert count(db_path, "deployments") == 1


# --- git metadata through the command -----------------------------------------------------------


def test_git_data_comes_from_the_repository_without_credentials(dora, db_path, frozen_now):
    repo = make_repo(Path.cwd(), origin="https://deploy:s3cr3t-token@git.example.com/o/r.git")
    head = git(repo, "rev-parse", "HEAD")

    result = dora("deployment", "--service", "api", "--started-at", "-5m")

    assert result.exit_code == 0, result.stderr
    assert rows(db_path, "SELECT repository_url, commit_sha FROM deployments") == [
        {"repository_url": "https://git.example.com/o/r.git", "commit_sha": head}
    ]
    assert "s3cr3t" not in result.stdout + result.stderr
    assert b"s3cr3t" not in db_path.read_bytes()


def test_giving_the_sha_flag_keeps_the_url_from_ci(dora, db_path, frozen_now, monkeypatch):
    monkeypatch.setenv("GITLAB_CI", "true")
    monkeypatch.setenv(
        "CI_REPOSITORY_URL", "https://gitlab-ci-token:glcbt-SECRET@gitlab.com/g/p.git"
    )
    monkeypatch.setenv("CI_COMMIT_SHA", "f" * 40)

    result = dora("deployment", "--service", "api", "--started-at", "-5m", "--git-commit-sha", SHA)

    assert result.exit_code == 0
    assert rows(db_path, "SELECT repository_url, commit_sha FROM deployments") == [
        {"repository_url": "https://gitlab.com/g/p.git", "commit_sha": SHA}
    ]
    assert b"SECRET" not in db_path.read_bytes()


def test_outside_a_repository_warns_once_and_records(dora, db_path, frozen_now):
    result = dora("deployment", "--service", "api", "--started-at", "-5m")

    assert result.exit_code == 0
    assert result.stderr.splitlines()[0] == (
        "dora: warning: not a git repository, so the event has no git data"
    )
    assert len(result.stderr.splitlines()) == 2
    assert rows(db_path, "SELECT repository_url, commit_sha FROM deployments") == [
        {"repository_url": None, "commit_sha": None}
    ]


def test_skip_git_looks_for_nothing(dora, db_path, frozen_now, monkeypatch):
    monkeypatch.setenv("DD_GIT_COMMIT_SHA", SHA)

    result = dora("deployment", "--service", "api", "--started-at", "-5m", "--skip-git")

    assert result.exit_code == 0
    assert "warning" not in result.stderr
    assert rows(db_path, "SELECT commit_sha FROM deployments") == [{"commit_sha": None}]


# --- dora incident --------------------------------------------------------------------------


def open_incident(dora, *args: str) -> str:
    result = dora("incident", "open", "--skip-git", *args)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def test_incident_open_prints_the_id_and_records_an_open_incident(dora, db_path, frozen_now):
    result = dora(
        "incident",
        "open",
        "--service",
        "api",
        "--service",
        "web",
        "--service",
        "api",
        "--env",
        "prod",
        "--name",
        "checkout 500s",
        "--severity",
        "SEV-2",
        "--skip-git",
    )

    assert result.exit_code == 0
    incident_id = result.stdout.strip()
    assert result.stderr == f"Opened incident {incident_id} (api, web, env prod) in {db_path}\n"
    [row] = rows(db_path, "SELECT id, name, severity, env, started_at, finished_at FROM incidents")
    assert row == {
        "id": incident_id,
        "name": "checkout 500s",
        "severity": "SEV-2",
        "env": "prod",
        "started_at": ns("2026-11-24T12:00:00Z"),
        "finished_at": None,
    }
    assert rows(db_path, "SELECT service FROM incident_services ORDER BY position") == [
        {"service": "api"},
        {"service": "web"},
    ]


def test_incident_needs_a_service_or_a_team(dora, db_path):
    result = dora("incident", "open", "--skip-git")

    assert result.exit_code == 2
    assert result.stderr == "dora: error: --service: name at least one service, or a team\n"
    assert not db_path.exists()


def test_incident_with_a_team_only_is_fine(dora, db_path, frozen_now):
    open_incident(dora, "--team", "payments", "--started-at", "-2h", "--finished-at", "-1h")

    assert rows(db_path, "SELECT team, finished_at FROM incidents") == [
        {"team": "payments", "finished_at": ns("2026-11-24T11:00:00Z")}
    ]
    assert count(db_path, "incident_services") == 0


def test_incident_dry_run_prints_the_failure_body(dora, db_path, frozen_now):
    result = dora(
        "incident",
        "open",
        "--service",
        "api",
        "--team",
        "core",
        "--started-at",
        "-1h",
        "--id",
        "incident-0000000001",
        "--skip-git",
        "--dry-run",
    )

    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "data": {
            "attributes": {
                "id": "incident-0000000001",
                "services": ["api"],
                "team": "core",
                "started_at": ns("2026-11-24T11:00:00Z"),
            }
        }
    }
    assert "/api/v2/dora/failure" in result.stderr
    assert not db_path.exists()


def test_resolve_by_unique_prefix(dora, db_path, frozen_now):
    incident_id = open_incident(dora, "--service", "api", "--started-at", "-90m")

    result = dora("incident", "resolve", incident_id[:20], "--finished-at", "-10m")

    assert result.exit_code == 0
    assert result.stderr == f"Resolved incident {incident_id} after 1h 20m in {db_path}\n"
    assert rows(db_path, "SELECT finished_at FROM incidents") == [
        {"finished_at": ns("2026-11-24T11:50:00Z")}
    ]


def test_resolve_defaults_to_now(dora, db_path, frozen_now):
    incident_id = open_incident(dora, "--service", "api", "--started-at", "-5m")

    assert dora("incident", "resolve", incident_id).exit_code == 0

    assert rows(db_path, "SELECT finished_at FROM incidents") == [
        {"finished_at": ns("2026-11-24T12:00:00Z")}
    ]


def test_resolve_errors(dora, db_path, frozen_now):
    first = open_incident(
        dora, "--service", "api", "--id", "INC-2026-0001-aaaa", "--started-at", "-1h"
    )
    open_incident(dora, "--service", "api", "--id", "INC-2026-0001-bbbb", "--started-at", "-1h")
    before = rows(db_path, "SELECT * FROM incidents ORDER BY id")

    unknown = dora("incident", "resolve", "INC-1999")
    ambiguous = dora("incident", "resolve", "INC-2026")
    too_early = dora("incident", "resolve", first, "--finished-at", "-2h")
    bad_time = dora("incident", "resolve", first, "--finished-at", "later")

    assert (unknown.exit_code, unknown.stderr) == (
        1,
        f"dora: error: no incident with an id starting with 'INC-1999' in {db_path}\n",
    )
    assert (ambiguous.exit_code, ambiguous.stderr) == (
        2,
        "dora: error: ID: 'INC-2026' matches several incidents "
        "(INC-2026-0001-aaaa, INC-2026-0001-bbbb); give more of it\n",
    )
    assert (too_early.exit_code, too_early.stderr) == (
        2,
        "dora: error: --finished-at: 2026-11-24T10:00:00Z is before the start "
        "(2026-11-24T11:00:00Z)\n",
    )
    assert bad_time.exit_code == 2
    assert bad_time.stderr.startswith("dora: error: --finished-at: 'later' is not a timestamp")
    assert rows(db_path, "SELECT * FROM incidents ORDER BY id") == before


def test_resolving_twice_is_an_error_that_changes_nothing(dora, db_path, frozen_now):
    incident_id = open_incident(dora, "--service", "api", "--started-at", "-1h")
    assert dora("incident", "resolve", incident_id, "--finished-at", "-30m").exit_code == 0

    again = dora("incident", "resolve", incident_id)

    assert again.exit_code == 1
    assert again.stderr == (
        f"dora: error: incident {incident_id} is already resolved (at 2026-11-24T11:30:00Z)\n"
    )
    assert rows(db_path, "SELECT finished_at FROM incidents") == [
        {"finished_at": ns("2026-11-24T11:30:00Z")}
    ]


def test_exact_id_wins_over_a_longer_one_with_the_same_prefix(dora, db_path, frozen_now):
    open_incident(dora, "--service", "a", "--id", "incident-00000001")
    open_incident(dora, "--service", "b", "--id", "incident-000000012")

    assert dora("incident", "resolve", "incident-00000001").exit_code == 0

    assert rows(db_path, "SELECT id FROM incidents WHERE finished_at IS NOT NULL") == [
        {"id": "incident-00000001"}
    ]


def test_incident_list_filters_and_formats(dora, db_path, frozen_now):
    open_id = open_incident(dora, "--service", "api", "--name", "slow [p99]", "--started-at", "-2h")
    done_id = open_incident(
        dora, "--service", "web", "--team", "edge", "--started-at", "-3h", "--finished-at", "-150m"
    )

    table = dora("incident", "list")
    only_open = dora("incident", "list", "--open", "--format", "json")
    by_service = dora("incident", "list", "--service", "web", "--format", "json")

    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "STARTED", "(UTC)", "STATE", "AFFECTS", "ENV", "NAME"]
    assert lines[1].split() == [
        open_id,
        "2026-11-24",
        "10:00",
        "open",
        "2h",
        "api",
        "slow",
        "[p99]",
    ]
    assert lines[2].split() == [
        done_id,
        "2026-11-24",
        "09:00",
        "took",
        "30m",
        "web",
        "(team",
        "edge)",
    ]
    assert [i["id"] for i in json.loads(only_open.stdout)] == [open_id]
    [web] = json.loads(by_service.stdout)
    assert web == {
        "type": "incident",
        "id": done_id,
        "services": ["web"],
        "team": "edge",
        "env": None,
        "version": None,
        "name": None,
        "severity": None,
        "started_at": "2026-11-24T09:00:00Z",
        "finished_at": "2026-11-24T09:30:00Z",
        "git": None,
        "custom_tags": [],
        "deployment_id": None,
    }


def test_incident_list_on_a_missing_store_creates_nothing(dora, db_path):
    result = dora("incident", "list", "--open")

    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == f"No incidents open in {db_path}.\n"
    assert not db_path.exists()


def test_incident_list_says_when_it_stops_at_the_limit(dora, db_path, frozen_now):
    for minutes in (30, 20, 10):
        open_incident(dora, "--service", "api", "--started-at", f"-{minutes}m")

    limited = dora("incident", "list", "--limit", "2", "--format", "json")
    exact = dora("incident", "list", "--limit", "3", "--format", "json")

    assert len(json.loads(limited.stdout)) == 2
    assert limited.stderr == "Showing the newest 2; --limit 0 shows all.\n"
    assert len(json.loads(exact.stdout)) == 3
    assert exact.stderr == ""


def test_resolve_checks_its_input_before_touching_the_store(dora, tmp_path):
    missing = tmp_path / "typo" / "dora.db"

    bad_time = dora("incident", "resolve", "01ABCDEFGH", "--db", str(missing), "--finished-at", "x")
    no_store = dora("incident", "resolve", "01ABCDEFGH", "--db", str(missing))

    assert bad_time.exit_code == 2
    assert bad_time.stderr.startswith("dora: error: --finished-at: 'x' is not a timestamp")
    assert (no_store.exit_code, no_store.stderr) == (
        1,
        f"dora: error: no store at {missing}: nothing has been recorded there yet\n",
    )
    assert not (tmp_path / "typo").exists()


def test_resolve_accepts_a_lower_case_ulid_prefix(dora, db_path, frozen_now):
    incident_id = open_incident(dora, "--service", "api", "--started-at", "-5m")

    result = dora("incident", "resolve", incident_id[:20].lower())

    assert result.exit_code == 0
    assert result.stderr.startswith(f"Resolved incident {incident_id} ")


# --- dora config, --version ------------------------------------------------------------


def test_config_shows_each_setting_and_its_source(dora, monkeypatch, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('team = "payments"\ndb = "postgresql://dora:hunter2@db.example.com/dora"\n')
    monkeypatch.setenv("DORA_CONFIG", str(config))
    monkeypatch.delenv("DORA_DB")
    monkeypatch.setenv("DD_SERVICE", "api")
    monkeypatch.setenv("DD_API_KEY", "k3y-value")

    result = dora("config")

    assert result.exit_code == 0
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["config", "file", str(config), "env", "DORA_CONFIG"],
        ["db", "postgresql://dora:***@db.example.com/dora", "config", "file"],
        ["service", "api", "env", "DD_SERVICE"],
        ["env", "-", "unset"],
        ["team", "payments", "config", "file"],
        ["backend", "local", "default"],
        ["retry_budget", "30", "default"],
        ["benchmarks", "2024", "default"],
        ["link_window", "none", "default"],
        ["hotfix_pattern", "(?i)\\bhotfix\\b", "default"],
        ["site", "datadoghq.com", "default"],
        ["api_url", "https://api.datadoghq.com", "default", "(from", "site)"],
        ["api_key", "***", "env", "DD_API_KEY"],
        ["app_key", "-", "unset"],
    ]
    assert "k3y-value" not in result.stdout
    assert "hunter2" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "colour = 'red'\n",
            "unknown setting 'colour' "
            "(known: db, service, env, team, backend, retry_budget, benchmarks, link_window, "
            "hotfix_pattern, site, api_url)",
        ),
        ("service = 3\n", "'service' must be a string in quotes"),
        (
            "retry_budget = true\n",
            "'retry_budget' must be a number of seconds, such as 60, not true",
        ),
        ("retry_budget = [60]\n", "'retry_budget' must be a number of seconds, such as 60"),
        ("service = \n", "invalid TOML: "),
    ],
)
def test_a_bad_config_file_is_a_usage_error(dora, monkeypatch, tmp_path, db_path, content, message):
    config = tmp_path / "c.toml"
    config.write_text(content)
    monkeypatch.setenv("DORA_CONFIG", str(config))
    monkeypatch.delenv("DORA_DB")

    result = dora("deployment", "--service", "api", "--started-at", "-5m", "--skip-git")

    assert result.exit_code == 2
    if message.endswith(": "):
        assert result.stderr.startswith(f"dora: error: config file {config}: {message}")
        assert result.stderr.count("\n") == 1
    else:
        assert result.stderr == f"dora: error: config file {config}: {message}\n"


def test_version(dora):
    from dora import __version__

    result = dora("--version")

    assert result.exit_code == 0
    assert result.stdout == f"dora {__version__}\n"


def test_no_arguments_shows_help(dora):
    result = dora()

    assert result.exit_code == 0
    assert "deployment" in result.stdout
    assert "incident" in result.stdout


# --- failures nobody planned for ---------------------------------------------------------------


def test_an_unexpected_error_is_one_line_without_verbose(dora, db_path, monkeypatch):
    def explode(self, event, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr("dora.store.sqlite.SQLiteStore.save", explode)
    monkeypatch.setattr("dora.cli._runtime.state.reraise", False)  # as for a user

    result = dora("deployment", "--service", "api", "--started-at", "-1m", "--skip-git")

    assert result.exit_code == 1
    assert result.stderr == (
        "dora: error: unexpected RuntimeError: kaboom "
        "(run with --verbose for the traceback, and please report it)\n"
    )


@pytest.mark.parametrize("how", [["--verbose"], ["-v"], ["DORA_DEBUG"]])
def test_verbose_lets_the_traceback_through(dora, db_path, monkeypatch, how):
    def explode(self, event, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr("dora.store.sqlite.SQLiteStore.save", explode)
    monkeypatch.setattr("dora.cli._runtime.state.reraise", False)
    flags = how
    if how == ["DORA_DEBUG"]:
        monkeypatch.setenv("DORA_DEBUG", "1")
        flags = []

    with pytest.raises(RuntimeError, match="kaboom"):
        dora("deployment", "--service", "api", "--started-at", "-1m", "--skip-git", *flags)


def test_verbose_shows_where_git_data_came_from(dora, db_path, monkeypatch):
    monkeypatch.setenv("DD_GIT_COMMIT_SHA", SHA)
    monkeypatch.setenv("DD_GIT_REPOSITORY_URL", "https://bot:hunter2@example.com/o/r.git")

    result = dora("--verbose", "deployment", "--service", "api", "--started-at", "-1m")

    assert result.exit_code == 0
    assert (
        "dora: debug: git repository URL https://example.com/o/r.git (from DD_GIT_REPOSITORY_URL)\n"
        in result.stderr
    )
    assert f"dora: debug: git commit SHA {SHA} (from DD_GIT_COMMIT_SHA)\n" in result.stderr
    assert "hunter2" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--db", ""], "--db: must not be empty"),
        (["--service", " "], "--service: must not be empty"),
        (
            ["--db", "mysql://dora:hunter2@db.example.com/dora"],
            "mysql:// stores are not supported; "
            "the store is an SQLite file path or a postgresql:// URL",
        ),
    ],
)
def test_unusable_settings_are_usage_errors(dora, tmp_path, args, message):
    result = dora("deployment", "--service", "api", "--started-at", "-1m", "--skip-git", *args)

    assert (result.exit_code, result.stderr) == (2, f"dora: error: {message}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "work"]


def test_a_bad_value_from_the_environment_is_named_by_its_variable(dora, db_path, monkeypatch):
    monkeypatch.setenv("DD_GIT_COMMIT_SHA", "abc")

    result = dora("deployment", "--service", "api", "--started-at", "-1m")

    assert (result.exit_code, result.stderr) == (
        2,
        "dora: error: DD_GIT_COMMIT_SHA: 'abc' is not a full commit SHA: "
        "expected 40 or more hex characters\n",
    )
    assert not db_path.exists()


def test_a_bad_setting_is_named_by_where_it_came_from(dora, db_path, monkeypatch, tmp_path):
    monkeypatch.setenv("DD_SERVICE", "api\nweb")
    from_env = dora("deployment", "--started-at", "-1m", "--skip-git")
    monkeypatch.delenv("DD_SERVICE")
    config = tmp_path / "c.toml"
    config.write_text('env = "pr\\nod"\n')
    monkeypatch.setenv("DORA_CONFIG", str(config))
    from_file = dora("deployment", "--service", "api", "--started-at", "-1m", "--skip-git")

    assert (from_env.exit_code, from_env.stderr) == (
        2,
        "dora: error: DD_SERVICE: must be one line without control characters\n",
    )
    assert (from_file.exit_code, from_file.stderr) == (
        2,
        "dora: error: 'env' in the config file: must be one line without control characters\n",
    )
    assert not db_path.exists()


def test_blank_variables_count_as_unset(dora, monkeypatch, isolated):
    monkeypatch.setenv("DORA_DB", "  ")
    monkeypatch.setenv("DD_ENV", " ")

    result = dora("deployment", "--service", "api", "--started-at", "-1m", "--skip-git")

    default = isolated / "home" / ".local" / "share" / "dora" / "dora.db"
    assert result.exit_code == 0
    assert rows(default, "SELECT env FROM deployments") == [{"env": None}]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'db = ""\n', "'db' must not be empty"),
        (b'service = "\xff"\n', "not UTF-8 text"),
        (
            b'api_key = "abc"\n',
            "'api_key' is a secret; set DATADOG_API_KEY or DD_API_KEY instead",
        ),
    ],
)
def test_unusable_config_values_are_usage_errors(dora, monkeypatch, tmp_path, content, message):
    config = tmp_path / "c.toml"
    config.write_bytes(content)
    monkeypatch.setenv("DORA_CONFIG", str(config))
    monkeypatch.delenv("DORA_DB")

    result = dora("deployment", "--service", "api", "--started-at", "-1m", "--skip-git")

    assert (result.exit_code, result.stderr) == (
        2,
        f"dora: error: config file {config}: {message}\n",
    )


def test_ctrl_c_is_one_line_and_exit_130(dora, db_path, monkeypatch):
    def interrupt(self, event, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("dora.store.sqlite.SQLiteStore.save", interrupt)

    result = dora("deployment", "--service", "api", "--started-at", "-1m", "--skip-git")

    assert (result.exit_code, result.stderr) == (130, "dora: error: interrupted\n")


@pytest.mark.parametrize(
    ("value", "debug"), [("1", True), ("true", True), ("0", False), ("false", False)]
)
def test_dora_debug_reads_like_a_boolean(monkeypatch, value, debug):
    from dora.cli._runtime import debug_enabled

    monkeypatch.setenv("DORA_DEBUG", value)

    assert debug_enabled() is debug


def test_empty_git_flags_are_refused_even_with_git_around(dora, db_path, frozen_now):
    make_repo(Path.cwd(), origin="https://example.com/o/r.git")

    result = dora("deployment", "--service", "api", "--started-at", "-1m", "--git-commit-sha", "")

    assert (result.exit_code, result.stderr) == (
        2,
        "dora: error: --git-commit-sha: '' is not a full commit SHA: "
        "expected 40 or more hex characters\n",
    )
    assert not db_path.exists()


def test_a_database_url_is_refused_before_git_is_asked(dora, tmp_path):
    # outside a git repository: no warning may come before the one error line
    result = dora("deployment", "--service", "api", "--started-at", "-1m", "--db", "mysql://h/d")

    assert (result.exit_code, result.stderr) == (
        2,
        "dora: error: mysql:// stores are not supported; "
        "the store is an SQLite file path or a postgresql:// URL\n",
    )


def test_a_huge_limit_is_a_usage_error(dora):
    result = dora("incident", "list", "--limit", "99999999999999999999")

    assert result.exit_code == 2
    assert result.stderr.startswith("dora: error: Invalid value for '--limit' / '-L'")
    assert result.stderr.count("\n") == 1


def test_resolve_needs_four_characters_of_a_prefix(dora, db_path, frozen_now):
    incident_id = open_incident(dora, "--service", "api", "--started-at", "-5m")

    result = dora("incident", "resolve", incident_id[:3])

    assert (result.exit_code, result.stderr) == (
        2,
        "dora: error: ID: give at least 4 characters of the id\n",
    )
    assert rows(db_path, "SELECT finished_at FROM incidents") == [{"finished_at": None}]


def test_an_incident_just_ahead_of_the_clock_lists_as_open_0s(dora, db_path, frozen_now):
    open_incident(dora, "--service", "api", "--started-at", "2026-11-24T12:03:00Z")

    result = dora("incident", "list")

    assert result.stdout.splitlines()[1].split()[3:5] == ["open", "0s"]


# --- names people read: no hidden characters, no more than Datadog takes ---------------------

_NOT_SEEN = "which is not seen but changes what is: use visible text only"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["deployment", "--service", "ap\u202ei"],
            f"--service: holds U+202E RIGHT-TO-LEFT OVERRIDE, {_NOT_SEEN}",
        ),
        (
            ["deployment", "--service", "api", "--env", "pr\u2066od"],
            f"--env: holds U+2066 LEFT-TO-RIGHT ISOLATE, {_NOT_SEEN}",
        ),
        (
            ["deployment", "--service", "api", "--team", "pay\u200bments"],
            f"--team: holds U+200B ZERO WIDTH SPACE, {_NOT_SEEN}",
        ),
        (
            ["deployment", "--service", "api", "--version", "1.0\u009b31m"],
            f"--version: holds U+009B, {_NOT_SEEN}",
        ),
        (
            ["deployment", "--service", "api", "--custom-tags", "owner:al\u202dice"],
            f"--custom-tags: a tag holds U+202D LEFT-TO-RIGHT OVERRIDE, {_NOT_SEEN}",
        ),
        (
            ["incident", "open", "--service", "api", "--name", "checkout\u2028down"],
            f"--name: holds U+2028 LINE SEPARATOR, {_NOT_SEEN}",
        ),
        (
            ["incident", "open", "--service", "api", "--severity", "SEV\ufeff1"],
            f"--severity: holds U+FEFF ZERO WIDTH NO-BREAK SPACE, {_NOT_SEEN}",
        ),
    ],
)
def test_hidden_characters_in_names_are_refused(dora, db_path, frozen_now, args, message):
    result = dora(*args, "--started-at", "-5m", "--skip-git")

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"dora: error: {message}\n"
    assert not db_path.exists()


def test_visible_names_in_any_script_are_kept(dora, db_path, frozen_now):
    name = "Zahlung über 日本 🚀 café\u00a0bar"

    result = dora("incident", "open", "--service", "ünïcode-api", "--name", name, "--skip-git")

    assert result.exit_code == 0, result.stderr
    assert rows(db_path, "SELECT name FROM incidents") == [{"name": name}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["deployment", "--service", "s" * 101],
            "--service: is 101 characters long; at most 100 (Datadog's limit for a service name)",
        ),
        (
            ["deployment", "--service", "api", "--env", "e" * 197],
            "--env: is 197 characters long; at most 196 "
            "(Datadog keeps a tag to 200 characters, 'env:' included)",
        ),
        (
            ["deployment", "--service", "api", "--team", "t" * 196],
            "--team: is 196 characters long; at most 195 "
            "(Datadog keeps a tag to 200 characters, 'team:' included)",
        ),
        (
            ["deployment", "--service", "api", "--version", "v" * 193],
            "--version: is 193 characters long; at most 192 "
            "(Datadog keeps a tag to 200 characters, 'version:' included)",
        ),
        (
            ["deployment", "--service", "api", "--custom-tags", "k:" + "v" * 199],
            "--custom-tags: a tag is 201 characters long; at most 200 "
            "(Datadog keeps a tag to 200 characters)",
        ),
        (
            ["incident", "open", "--service", "s" * 1_000_000],
            "--service: is 1,000,000 characters long; at most 100 "
            "(Datadog's limit for a service name)",
        ),
        (
            ["incident", "open", "--service", "api", "--name", "n" * 1025],
            "--name: is 1,025 characters long; at most 1,024 "
            "(an incident's name is a line, not a report)",
        ),
        (
            ["incident", "open", "--service", "api", "--severity", "s" * 192],
            "--severity: is 192 characters long; at most 191 "
            "(Datadog keeps a tag to 200 characters, 'severity:' included)",
        ),
        (
            [
                "deployment",
                "--service",
                "api",
                "--git-repository-url",
                "https://h.io/" + "r" * 2040,
            ],
            "--git-repository-url: is 2,053 characters long; at most 2,048 "
            "(the longest URL most git hosts serve)",
        ),
    ],
)
def test_values_longer_than_datadog_takes_are_refused(dora, db_path, frozen_now, args, message):
    result = dora(*args, "--started-at", "-5m", "--skip-git")

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"dora: error: {message}\n"
    assert not db_path.exists()


def test_values_at_the_limit_are_kept(dora, db_path, frozen_now):
    result = dora(
        "deployment", "--service", "s" * 100, "--env", "e" * 196, "--team", "t" * 195,
        "--version", "v" * 192, "--custom-tags", "k:" + "v" * 198,
        "--started-at", "-5m", "--skip-git",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert count(db_path, "deployments") == 1


def test_incident_list_shows_hidden_characters_a_store_written_before_holds(
    dora, db_path, frozen_now
):
    from conftest import execute

    assert dora("incident", "open", "--service", "api", "--name", "x", "--skip-git").exit_code == 0
    execute(db_path, "UPDATE incidents SET name = ?", ("pay\u202eroll",))

    result = dora("incident", "list")

    assert "\u202e" not in result.stdout
    assert "pay<U+202E>roll" in result.stdout


# --- dora incident open --deployment -----------------------------------------------------


def test_an_incident_names_the_deployment_that_caused_it_by_a_prefix(dora, db_path, frozen_now):
    deployed = dora("deployment", "--service", "api", "--started-at", "-1h", "--skip-git")
    deployment_id = deployed.stdout.strip()

    opened = dora(
        "incident", "open", "--service", "api", "--deployment", deployment_id[:8].lower(),
        "--skip-git",
    )  # fmt: skip
    dry = dora(
        "incident", "open", "--service", "api", "--deployment", deployment_id, "--skip-git",
        "--dry-run",
    )  # fmt: skip
    exported = dora("export")

    assert opened.exit_code == 0, opened.stderr
    assert rows(db_path, "SELECT deployment_id FROM incidents") == [
        {"deployment_id": deployment_id}
    ]
    assert "deployment_id" not in dry.stdout  # Datadog's API has no such field
    incident = json.loads(exported.stdout.splitlines()[-1])
    assert incident["deployment_id"] == deployment_id


@pytest.mark.parametrize(
    ("ref", "code", "message"),
    [
        ("ZZZZZZZZ", 1, "--deployment: no deployment with an id starting with 'ZZZZZZZZ' in {db}"),
        ("deploy-0", 2, "--deployment: 'deploy-0' matches several deployments "
         "(deploy-00000000001, deploy-00000000002); give more of it"),
        ("dep", 2, "--deployment: give at least 4 characters of the id"),
        ("not an id", 2, "--deployment: 'not an id' is not a deployment id"),
    ],
)  # fmt: skip
def test_a_deployment_that_names_no_single_one_is_refused(
    dora, db_path, frozen_now, ref, code, message
):
    for n in (1, 2):
        assert dora(
            "deployment", "--service", "api", "--started-at", "-1h", "--skip-git",
            "--id", f"deploy-0000000000{n}",
        ).exit_code == 0  # fmt: skip

    result = dora("incident", "open", "--service", "api", "--deployment", ref, "--skip-git")

    assert (result.exit_code, result.stderr) == (
        code,
        f"dora: error: {message.format(db=db_path)}\n",
    )
    assert count(db_path, "incidents") == 0
