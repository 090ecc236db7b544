"""The hotfix pattern as a setting (``--hotfix-pattern``, ``DORA_HOTFIX_PATTERN``,
``hotfix_pattern``), the store following it, and stores from before it was kept."""

from __future__ import annotations

import functools
import json

import pytest

from conftest import execute, rows
from dora import timeparse
from dora.failures import HOTFIX
from dora.store import migrations, open_store, postgres


def record(dora, n: int, version: str, *extra: str):
    at = f"2026-11-24T0{n}:00:00Z"
    result = dora(
        "deployment", "--service", "api", "--env", "prod", "--version", version,
        "--started-at", at, "--finished-at", at, "--id", f"deploy-hotfix-test-{n:02d}",
        "--skip-git", *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return result


def total(dora, *extra: str) -> dict:
    result = dora("metrics", "--format", "json", "--since", "2026-11-01", *extra)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["total"]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ("metrics", "--hotfix-pattern", "("),
            {},
            "--hotfix-pattern: '(' is not a regular expression: missing ), unterminated "
            "subpattern at position 0",
        ),
        (
            ("import", "--hotfix-pattern", "[a-", "-"),
            {},
            "--hotfix-pattern: '[a-' is not a regular expression: unterminated character set "
            "at position 0",
        ),
        (
            ("deployment", "--service", "api", "--started-at", "-5m"),
            {"DORA_HOTFIX_PATTERN": "(?i)hotfix|"},
            "DORA_HOTFIX_PATTERN: '(?i)hotfix|' matches an empty text, so every deployment "
            "would be a hotfix",
        ),
    ],
)
def test_a_bad_hotfix_pattern_is_a_usage_error_naming_where_it_came_from(
    dora, db_path, monkeypatch, args, env, message
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    result = dora(*args, input="")

    assert (result.exit_code, result.stderr) == (2, f"dora: error: {message}\n")
    assert not db_path.exists()


def test_metrics_with_another_pattern_judges_every_deployment_with_it(dora, store_db, frozen_now):
    record(dora, 1, "1.0")
    record(dora, 2, "1.1")
    record(dora, 3, "1.1-urgent")
    record(dora, 4, "1.2-hotfix")
    assert (total(dora)["failed_deployments"], total(dora)["change_failure_rate"]) == (1, 0.25)

    result = dora(
        "metrics", "--format", "json", "--since", "2026-11-01", "--hotfix-pattern", r"\burgent\b"
    )

    assert result.exit_code == 0
    figures = json.loads(result.stdout)["total"]
    assert (figures["failed_deployments"], figures["change_failure_rate"]) == (1, 0.25)
    assert result.stderr == (
        r"Change failures found again with hotfix pattern '\burgent\b' (the store had "
        r"'(?i)\bhotfix\b'): 4 deployments." + "\n"
    )
    assert [r["failed_id"] for r in rows(store_db, "SELECT failed_id FROM change_failures")] == [
        "deploy-hotfix-test-02"
    ]
    # the store follows the latest pattern asked for: a report without one is the default's
    assert rows(store_db, "SELECT value FROM detection_settings") == [{"value": r"\burgent\b"}]
    assert total(dora)["failed_deployments"] == 1
    assert rows(store_db, "SELECT value FROM detection_settings") == [{"value": HOTFIX}]
    assert [r["failed_id"] for r in rows(store_db, "SELECT failed_id FROM change_failures")] == [
        "deploy-hotfix-test-03"
    ]


def test_the_pattern_of_the_config_file_is_every_commands(dora, store_db, frozen_now, tmp_path,
                                                          monkeypatch):  # fmt: skip
    config = tmp_path / "c.toml"
    config.write_text("hotfix_pattern = '(?i)^urgent:'\n")
    monkeypatch.setenv("DORA_CONFIG", str(config))
    record(dora, 1, "1.0")
    record(dora, 2, "urgent: 1.1")
    record(dora, 3, "1.2-hotfix")

    figures = total(dora)

    assert (figures["failed_deployments"], figures["rework_deployments"]) == (1, 1)
    assert rows(store_db, "SELECT failed_id FROM change_failures") == [
        {"failed_id": "deploy-hotfix-test-01"}
    ]


def test_an_import_finds_the_change_failures_with_the_pattern_given(dora, store_db, frozen_now):
    lines = [
        {"type": "deployment", "id": f"deploy-import-{n:03d}", "service": "api", "env": "prod",
         "version": version, "started_at": f"2026-11-24T0{n}:00:00Z",
         "finished_at": f"2026-11-24T0{n}:00:00Z"}
        for n, version in enumerate(["1.0", "1.1", "1.1-patch"], 1)
    ]  # fmt: skip
    text = "".join(json.dumps(line) + "\n" for line in lines)

    result = dora("import", "--hotfix-pattern", r"-patch$", "-", input=text)

    assert result.exit_code == 0, result.stderr
    assert rows(store_db, "SELECT failed_id, rule FROM change_failures") == [
        {"failed_id": "deploy-import-002", "rule": "hotfix"}
    ]


def _old_store(store_db, monkeypatch) -> None:
    """A store as dora left it at m005: before change_failures existed."""
    with monkeypatch.context() as patch:
        patch.setattr(postgres, "MIGRATIONS", postgres.MIGRATIONS[:5])
        patch.setattr(
            migrations,
            "migrate",
            functools.partial(migrations.migrate, migrations=migrations.MIGRATIONS[:5]),
        )
        open_store(store_db).close()
    assert {r["name"] for r in rows(store_db, "SELECT name FROM dora_migrations")} == {
        name for name, _ in migrations.MIGRATIONS[:5]
    }


def test_a_store_from_before_change_failures_has_them_found_once(
    dora, store_db, frozen_now, monkeypatch
):
    _old_store(store_db, monkeypatch)
    versions = ["v1", "v2", "v3", "v1", "v4", "v5"]  # v2 rolled back; v4 hotfixed by d6
    for n, version in enumerate(versions, 1):
        at = timeparse.to_ns(frozen_now) - (10 - n) * 3600 * 10**9
        execute(
            store_db,
            "INSERT INTO deployments (id, service, env, version, started_at, finished_at, "
            "commit_sha, recorded_at) VALUES (?, 'api', 'prod', ?, ?, ?, ?, ?)",
            (f"deploy-old-{n:03d}", version, at - 60 * 10**9, at, None, at),
        )
    execute(
        store_db,
        "INSERT INTO deployment_commits (deployment_id, sha, committed_at, subject) "
        "VALUES ('deploy-old-006', ?, 0, 'hotfix: checkout totals')",
        ("f" * 40,),
    )

    figures = total(dora)

    assert (figures["deployments"], figures["failed_deployments"]) == (6, 2)
    assert figures["change_failure_rate"] == pytest.approx(2 / 6)
    assert {
        (r["failed_id"], r["rule"]) for r in rows(store_db, "SELECT * FROM change_failures")
    } == {("deploy-old-002", "rollback"), ("deploy-old-005", "hotfix")}
    assert rows(store_db, "SELECT value FROM detection_settings") == [{"value": HOTFIX}]


def test_a_report_on_a_store_it_cannot_write_warns_and_reports_what_is_kept(
    dora, store_db, frozen_now, monkeypatch
):
    record(dora, 1, "1.0")
    record(dora, 2, "1.1-hotfix")
    from dora.errors import StoreError
    from dora.store.sql import SQLStore

    def refuse(self, pattern, *, progress=None):
        raise StoreError("cannot write to the store at X: permission denied")

    monkeypatch.setattr(SQLStore, "use_hotfix", refuse)

    result = dora("metrics", "--format", "json", "--hotfix-pattern", "urgent")

    assert result.exit_code == 0
    assert json.loads(result.stdout)["total"]["failed_deployments"] == 1
    assert result.stderr == (
        "dora: warning: cannot write to the store at X: permission denied; change failures are "
        "reported as the store keeps them, which may not be with hotfix pattern 'urgent'\n"
    )


def test_recording_with_another_pattern_says_the_store_follows_it(dora, store_db, frozen_now):
    record(dora, 1, "1.0")
    record(dora, 2, "1.1")

    result = record(dora, 3, "1.2-URGENT", "--hotfix-pattern", "(?i)urgent")

    assert result.stderr == (
        "Change failures found again with hotfix pattern '(?i)urgent' (the store had "
        r"'(?i)\bhotfix\b'): 2 deployments." + "\n"
        f"Recorded deployment deploy-hotfix-test-03 (api, env prod) in {store_db}\n"
    )
    assert rows(store_db, "SELECT failed_id, cause_id, rule FROM change_failures") == [
        {
            "failed_id": "deploy-hotfix-test-02",
            "cause_id": "deploy-hotfix-test-03",
            "rule": "hotfix",
        }
    ]
