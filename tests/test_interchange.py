"""``dora import`` and ``dora export``: what reaches the store, what comes out, and what a
bad file gets back."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import dora as dora_package
from conftest import count, rows
from dora import interchange
from dora.cli import _runtime

SHA = "a" * 40
OTHER_SHA = "b" * 40
NDJSON = [
    {
        "type": "deployment",
        "id": "deploy-0000000000001",
        "service": "api",
        "env": "prod",
        "version": "1.2.0",
        "started_at": "2026-11-01T10:00:00Z",
        "finished_at": "2026-11-01T10:05:00.250000Z",
        "git": {"repository_url": "https://github.com/acme/api", "commit_sha": SHA},
        "custom_tags": ["region:eu", "path:C:\\deploy;v2"],
        "commits": [{"sha": OTHER_SHA, "committed_at": "2026-10-31T18:00:00Z"}],
    },
    {
        "type": "incident",
        "id": "incident-000000000001",
        "services": ["web", "api"],
        "name": "checkout 500s, «ünïcode»",
        "severity": "SEV-1",
        "team": "payments",
        "env": "prod",
        "started_at": "2026-11-01T11:00:00Z",
        "finished_at": "2026-11-01T11:45:00Z",
    },
    {
        "type": "incident",
        "id": "incident-000000000002",
        "team": "core",
        "started_at": "2026-11-02T08:00:00Z",
    },
]


@pytest.fixture
def db_path(store_db):
    """Every test here runs on both engines."""
    return store_db


def write_ndjson(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def store_contents(db: Path) -> dict[str, list[dict]]:
    return {
        table: rows(db, f"SELECT * FROM {table} ORDER BY 1, 2")
        for table in ("deployments", "incidents", "incident_services", "deployment_commits")
    }


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    return write_ndjson(tmp_path / "events.ndjson", NDJSON)


def test_import_stores_each_record_as_the_commands_would(dora, db_path, events_file, frozen_now):
    result = dora("import", str(events_file))

    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == (
        f"Imported 3 events from {events_file} into {db_path}: 3 new, 0 updated, 0 unchanged.\n"
    )
    [deployment] = rows(db_path, "SELECT * FROM deployments")
    assert deployment["service"] == "api"
    assert deployment["finished_at"] == 1_793_527_500_250_000_000
    assert json.loads(deployment["custom_tags"]) == ["region:eu", "path:C:\\deploy;v2"]
    assert rows(db_path, "SELECT sha, committed_at FROM deployment_commits") == [
        {"sha": OTHER_SHA, "committed_at": 1_793_469_600_000_000_000}
    ]
    assert rows(
        db_path, "SELECT incident_id, service FROM incident_services ORDER BY position"
    ) == [
        {"incident_id": "incident-000000000001", "service": "web"},
        {"incident_id": "incident-000000000001", "service": "api"},
    ]
    assert [r["finished_at"] for r in rows(db_path, "SELECT * FROM incidents ORDER BY id")] == [
        1_793_533_500_000_000_000,
        None,
    ]
    assert count(db_path, "outbox") == 0  # the local backend sends nothing


def test_importing_the_same_file_twice_leaves_the_store_as_after_once(
    dora, db_path, events_file, frozen_now
):
    assert dora("import", str(events_file)).exit_code == 0
    before = store_contents(db_path)

    again = dora("import", str(events_file))

    assert again.exit_code == 0
    assert again.stderr.endswith("0 new, 0 updated, 3 unchanged.\n")
    assert store_contents(db_path) == before  # recorded_at included: nothing was rewritten


def test_a_changed_record_updates_its_event(dora, db_path, events_file, frozen_now, tmp_path):
    assert dora("import", str(events_file)).exit_code == 0
    resolved = {**NDJSON[2], "finished_at": "2026-11-02T09:30:00Z"}
    later = write_ndjson(tmp_path / "later.ndjson", [resolved])

    result = dora("import", str(later))

    assert result.stderr.endswith("0 new, 1 updated, 0 unchanged.\n")
    assert rows(
        db_path, "SELECT finished_at FROM incidents WHERE id = 'incident-000000000002'"
    ) == [{"finished_at": 1_793_611_800_000_000_000}]
    assert count(db_path, "incidents") == 2


def test_records_without_ids_get_the_same_id_each_time(dora, db_path, tmp_path, frozen_now):
    deploy = {"type": "deployment", "service": "api", "started_at": "2026-11-03T09:00:00Z",
              "finished_at": "2026-11-03T09:04:00Z"}  # fmt: skip
    incident = {"type": "incident", "services": ["api"], "name": "slow",
                "started_at": "2026-11-03T10:00:00Z"}  # fmt: skip
    first = write_ndjson(tmp_path / "a.ndjson", [deploy, incident])
    assert dora("import", str(first)).exit_code == 0
    ids = sorted(
        r["id"]
        for r in rows(db_path, "SELECT id FROM deployments UNION ALL SELECT id FROM incidents")
    )

    # the spreadsheet is updated: the incident is over, with a severity now
    resolved = {**incident, "finished_at": "2026-11-03T10:20:00Z", "severity": "SEV-2"}
    second = write_ndjson(tmp_path / "b.ndjson", [deploy, resolved])
    result = dora("import", str(second))

    assert result.stderr.endswith("0 new, 1 updated, 1 unchanged.\n")
    assert all(i.startswith("import-") and len(i) == 39 for i in ids)
    assert (
        sorted(
            r["id"]
            for r in rows(db_path, "SELECT id FROM deployments UNION ALL SELECT id FROM incidents")
        )
        == ids
    )
    assert rows(db_path, "SELECT severity, finished_at FROM incidents") == [
        {"severity": "SEV-2", "finished_at": 1_793_701_200_000_000_000}
    ]


def test_csv_import_splits_lists_and_reads_git_columns(dora, db_path, tmp_path, frozen_now):
    path = tmp_path / "history.csv"
    path.write_text(
        "\ufefftype,id,service,services,team,started_at,finished_at,git.commit_sha,custom_tags\n"
        f"deployment,deploy-0000000000009,api,,,2026-11-01T10:00:00Z,1793527500,{SHA},a:1;b:x\\;y\n"
        "incident,incident-000000000009,, web ; api ;,core,2026-11-01T11:00:00Z,,,\n"
        ",,,,,,,,\n",
        encoding="utf-8",
    )

    result = dora("import", str(path))

    assert result.exit_code == 0, result.stderr
    [deployment] = rows(db_path, "SELECT commit_sha, custom_tags, finished_at FROM deployments")
    assert deployment == {
        "commit_sha": SHA,
        "custom_tags": '["a:1", "b:x;y"]',
        "finished_at": 1_793_527_500_000_000_000,
    }
    assert [
        r["service"]
        for r in rows(db_path, "SELECT service FROM incident_services ORDER BY position")
    ] == ["web", "api"]


@pytest.mark.parametrize(
    ("cell", "items"),
    [
        ("a;b;c", ["a", "b", "c"]),
        (" a ; ;b ;", ["a", "b"]),
        ("", []),
        (" ; ", []),
        ("a\\;b;c", ["a;b", "c"]),
        ("a\\\\;b", ["a\\", "b"]),
        ("a\\b;c\\", ["a\\b", "c\\"]),
        ("a\\\\\\;b", ["a\\;b"]),
    ],
)
def test_a_csv_list_cell_splits_at_each_unescaped_semicolon(cell, items):
    assert interchange.split_list(cell) == items


def test_a_csv_list_reads_back_what_was_written_with_or_without_escapes():
    import random

    pick = random.Random(15)
    for _ in range(2_000):
        items = [
            "".join(pick.choice("ab ;\\:") for _ in range(pick.randint(1, 6))).strip()
            for _ in range(pick.randint(0, 4))
        ]
        items = [item for item in items if item]

        assert interchange.split_list(interchange.join_list(items)) == items


def test_one_invalid_record_imports_nothing_and_names_each_bad_line(
    dora, db_path, tmp_path, frozen_now
):
    path = tmp_path / "bad.csv"
    path.write_text(
        "type,service,started_at,finished_at,git.commit_sha\n"
        "deployment,api,2026-11-01T10:00:00Z,2026-11-01T10:01:00Z,\n"
        "deployment,api,2026-11-01T10:00:00Z,2026-11-01T09:00:00Z,\n"
        "deploy,api,2026-11-01T10:00:00Z,,\n"
        "deployment,api,2026-11-01T10:00:00Z,2026-11-01T10:01:00Z,abc\n"
        '"deployment","api\nsecond line","2026-11-01T10:00:00Z","2026-11-01T10:01:00Z",\n'
        "deployment,api,2026-11-01T10:00:00Z,2026-11-01T10:01:00Z,,extra\n"
    )

    result = dora("import", str(path))

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"dora: error: {path}:3: finished_at: 2026-11-01T09:00:00Z is before the start "
        "(2026-11-01T10:00:00Z)",
        f"dora: error: {path}:4: type: 'deploy' is not deployment or incident",
        f"dora: error: {path}:5: git.commit_sha: 'abc' is not a full commit SHA: "
        "expected 40 or more hex characters",
        f"dora: error: {path}:6: service: must be one line without control characters",
        f"dora: error: {path}:8: 6 cells, but the header has 5",
        "dora: error: 5 invalid records; nothing was imported "
        "(--skip-invalid imports the valid ones)",
    ]
    assert not db_path.exists()


def test_skip_invalid_imports_the_valid_records_and_lists_the_rest(
    dora, db_path, tmp_path, frozen_now
):
    good = {"type": "incident", "team": "core", "started_at": "2026-11-01T10:00:00Z"}
    path = tmp_path / "mixed.ndjson"
    path.write_text(
        json.dumps(good) + "\n"
        + "\n"
        + "{not json\n"
        + "[1, 2]\n"
        + json.dumps({**good, "services": "api"}) + "\n"
        + json.dumps({**good, "colour": "red"}) + "\n"
        + json.dumps({**good, "type": "deployment", "commits": []}) + "\n"
        + json.dumps({**good, "commits": []}) + "\n"
    )  # fmt: skip

    result = dora("import", "--skip-invalid", str(path))

    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        f"dora: warning: {path}:3: not JSON (Expecting property name enclosed in double "
        "quotes, column 2)",
        f"dora: warning: {path}:4: not a JSON object",
        f"dora: warning: {path}:5: services: Input should be a valid list",
        f"dora: warning: {path}:6: colour: unknown field",
        f"dora: warning: {path}:7: finished_at: required",
        f"dora: warning: {path}:8: commits: only deployments ship commits",
        "Skipped 6 invalid records.",
        f"Imported 1 event from {path} into {db_path}: 1 new, 0 updated, 0 unchanged.",
    ]
    assert count(db_path, "incidents") == 1


def test_only_the_first_twenty_problems_are_listed(dora, db_path, tmp_path, frozen_now):
    bad = {"type": "incident", "team": "core", "started_at": "soon"}
    path = write_ndjson(tmp_path / "many.jsonl", [bad] * 25)

    result = dora("import", str(path))

    lines = result.stderr.splitlines()
    assert result.exit_code == 2
    assert len(lines) == 22
    assert lines[19].startswith(f"dora: error: {path}:20: started_at: 'soon' is not a timestamp")
    assert lines[20:] == [
        "dora: error: ... and 5 more invalid records",
        "dora: error: 25 invalid records; nothing was imported "
        "(--skip-invalid imports the valid ones)",
    ]


def test_standard_input_is_read_and_its_format_told_from_its_first_line(dora, db_path, frozen_now):
    csv_text = "type,team,started_at\nincident,core,2026-11-01T10:00:00Z\n"
    ndjson_text = json.dumps(NDJSON[2]) + "\n"

    from_csv = dora("import", "-", input=csv_text)
    from_ndjson = dora("import", "-", input=ndjson_text)

    assert from_csv.exit_code == from_ndjson.exit_code == 0
    assert from_csv.stderr.startswith("Imported 1 event from <stdin> into")
    assert count(db_path, "incidents") == 2


def test_format_flag_overrides_the_name(dora, db_path, tmp_path, frozen_now):
    path = tmp_path / "events.txt"
    path.write_text("type,team,started_at\nincident,core,2026-11-01T10:00:00Z\n")

    as_ndjson = dora("import", "--format", "ndjson", str(path))
    as_csv = dora("import", "--format", "csv", str(path))

    assert as_ndjson.exit_code == 2
    assert f"{path}:1: not JSON" in as_ndjson.stderr
    assert as_csv.exit_code == 0


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "type,colour",
            "unknown column 'colour'; the columns are " + ", ".join(interchange.CSV_COLUMNS),
        ),
        ("type,team,team", "the column 'team' appears twice"),
        (
            "team,started_at",
            "no 'type' column: each row says whether it is a deployment or an incident",
        ),
    ],
)
def test_a_bad_csv_header_is_named(dora, db_path, tmp_path, header, message):
    path = tmp_path / "h.csv"
    path.write_text(header + "\nincident,core\n")

    result = dora("import", str(path))

    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == f"dora: error: {path}:1: {message}"
    assert not db_path.exists()


def test_a_line_that_is_not_utf8_is_named(dora, db_path, tmp_path):
    path = tmp_path / "latin1.ndjson"
    path.write_bytes(json.dumps(NDJSON[2]).encode() + b"\n" + b'{"name": "caf\xe9"}\n')

    result = dora("import", str(path))

    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == f"dora: error: {path}:2: not UTF-8 text"


def test_a_missing_file_is_a_usage_error(dora, db_path, tmp_path):
    result = dora("import", str(tmp_path / "nope.ndjson"))

    assert result.exit_code == 2
    assert result.stderr == (
        f"dora: error: {tmp_path / 'nope.ndjson'}: cannot read it (No such file or directory)\n"
    )
    assert not db_path.exists()


# export


def test_export_writes_every_event_oldest_first_with_empty_fields_left_out(
    dora, db_path, events_file, frozen_now
):
    assert dora("import", str(events_file)).exit_code == 0

    result = dora("export")

    assert result.exit_code == 0
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {**NDJSON[0], "finished_at": "2026-11-01T10:05:00.250000Z"},
        NDJSON[1],
        NDJSON[2],
    ]
    assert result.stderr == "Exported 3 events to standard output.\n"


def test_export_csv_is_one_row_per_event_with_escaped_lists(dora, db_path, events_file, frozen_now):
    assert dora("import", str(events_file)).exit_code == 0

    result = dora("export", "--format", "csv")

    assert result.stdout.splitlines() == [
        ",".join(interchange.CSV_COLUMNS),
        "deployment,deploy-0000000000001,api,,,,,prod,1.2.0,2026-11-01T10:00:00Z,"
        "2026-11-01T10:05:00.250000Z,https://github.com/acme/api,"
        f"{SHA},region:eu;path:C:\\\\deploy\\;v2,{OTHER_SHA}@2026-10-31T18:00:00Z,",
        'incident,incident-000000000001,,web;api,"checkout 500s, «ünïcode»",SEV-1,payments,'
        "prod,,2026-11-01T11:00:00Z,2026-11-01T11:45:00Z,,,,,",
        "incident,incident-000000000002,,,,,core,,,2026-11-02T08:00:00Z,,,,,,",
    ]


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
def test_export_import_export_gives_the_same_bytes(
    dora, tmp_path, events_file, fmt, monkeypatch, frozen_now
):
    monkeypatch.setenv("DORA_DB", str(tmp_path / "first.db"))
    assert dora("import", str(events_file)).exit_code == 0
    first = dora("export", "--format", fmt, "--output", str(tmp_path / f"first.{fmt}"))
    assert first.exit_code == 0, first.stderr

    monkeypatch.setenv("DORA_DB", str(tmp_path / "second.db"))
    assert dora("import", str(tmp_path / f"first.{fmt}")).exit_code == 0
    second = dora("export", "--format", fmt)

    assert second.stdout == (tmp_path / f"first.{fmt}").read_text()
    assert (
        store_contents(tmp_path / "second.db")["deployment_commits"]
        == (store_contents(tmp_path / "first.db")["deployment_commits"])
    )


def test_export_window_and_filters_pick_events_as_metrics_does(dora, db_path, tmp_path, frozen_now):
    records = [
        {"type": "deployment", "id": "d-before-window-0001", "service": "api",
         "started_at": "2026-10-31T23:50:00Z", "finished_at": "2026-10-31T23:59:59Z"},
        {"type": "deployment", "id": "d-at-window-start-01", "service": "api",
         "started_at": "2026-10-31T23:58:00Z", "finished_at": "2026-11-01T00:00:00Z"},
        {"type": "deployment", "id": "d-other-service-0001", "service": "web",
         "started_at": "2026-11-01T10:00:00Z", "finished_at": "2026-11-01T10:01:00Z"},
        {"type": "deployment", "id": "d-at-window-end-0001", "service": "api",
         "started_at": "2026-11-07T23:59:00Z", "finished_at": "2026-11-08T00:00:00Z"},
        {"type": "incident", "id": "i-resolved-before-01", "services": ["api"],
         "started_at": "2026-10-30T00:00:00Z", "finished_at": "2026-10-31T00:00:00Z"},
        {"type": "incident", "id": "i-spanning-start-001", "services": ["api"],
         "started_at": "2026-10-30T00:00:00Z", "finished_at": "2026-11-02T00:00:00Z"},
        {"type": "incident", "id": "i-still-open-000001", "services": ["web", "api"],
         "started_at": "2026-10-20T00:00:00Z"},
        {"type": "incident", "id": "i-after-window-0001", "services": ["api"],
         "started_at": "2026-11-08T00:00:00Z"},
    ]  # fmt: skip
    assert dora("import", str(write_ndjson(tmp_path / "w.ndjson", records))).exit_code == 0

    result = dora("export", "--since", "2026-11-01", "--until", "2026-11-08", "--service", "api")

    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [
        "i-still-open-000001",
        "i-spanning-start-001",
        "d-at-window-start-01",
    ]


def test_export_to_a_file_replaces_it_only_when_complete(
    dora, db_path, events_file, tmp_path, frozen_now
):
    assert dora("import", str(events_file)).exit_code == 0
    target = tmp_path / "backup.ndjson"
    target.write_text("the previous backup\n")

    result = dora("export", "-o", str(target))

    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == f"Exported 3 events to {target}.\n"
    assert len(target.read_text().splitlines()) == 3
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".backup")) == []


def test_a_failed_export_leaves_the_previous_file(
    dora, db_path, events_file, tmp_path, monkeypatch, frozen_now
):
    assert dora("import", str(events_file)).exit_code == 0
    target = tmp_path / "backup.ndjson"
    target.write_text("the previous backup\n")

    def broken(records, out):
        out.write("half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(interchange, "write_ndjson", broken)
    result = dora("export", "-o", str(target))

    assert result.exit_code == 1
    assert result.stderr == "dora: error: cannot write the output: No space left on device\n"
    assert target.read_text() == "the previous backup\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".backup")] == []


def test_export_of_a_missing_store_is_empty_and_creates_nothing(dora, db_path):
    result = dora("export", "--format", "csv")

    assert result.exit_code == 0
    assert result.stdout == ",".join(interchange.CSV_COLUMNS) + "\n"
    assert result.stderr.splitlines() == [
        f"Nothing has been recorded in {db_path} yet.",
        "Exported 0 events to standard output.",
    ]
    assert not db_path.exists()


# with the datadog backend

API = "https://api.datadoghq.eu"


@pytest.fixture
def datadog(monkeypatch):
    monkeypatch.setenv("DATADOG_SITE", "datadoghq.eu")
    monkeypatch.setenv("DATADOG_API_KEY", "0123456789abcdef-key")
    monkeypatch.setenv("DORA_BACKEND", "datadog")


def test_imported_events_are_sent_once(
    respx_router, dora, db_path, events_file, datadog, frozen_now
):
    deployments = respx_router.post(f"{API}/api/v2/dora/deployment").mock(
        return_value=httpx.Response(202)
    )
    failures = respx_router.post(f"{API}/api/v2/dora/failure").mock(
        return_value=httpx.Response(202)
    )

    first = dora("import", str(events_file))
    again = dora("import", str(events_file))

    assert first.exit_code == again.exit_code == 0, first.stderr
    assert first.stderr.splitlines()[-1] == f"Sent 3 events to {API}."
    assert again.stderr.splitlines()[-1] == f"Sent 0 events to {API}."
    assert len(deployments.calls) == 1
    assert len(failures.calls) == 2
    sent = json.loads(deployments.calls[0].request.content)["data"]["attributes"]
    assert sent["id"] == "deploy-0000000000001"
    assert rows(db_path, "SELECT DISTINCT state FROM outbox") == [{"state": "delivered"}]


def test_events_that_cannot_be_sent_wait_for_push(
    respx_router, dora, db_path, events_file, datadog, monkeypatch, frozen_now
):
    monkeypatch.setenv("DORA_RETRY_BUDGET", "1")
    respx_router.post(f"{API}/api/v2/dora/deployment").mock(return_value=httpx.Response(401))
    respx_router.post(f"{API}/api/v2/dora/failure").mock(return_value=httpx.Response(401))

    result = dora("import", str(events_file))

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"dora: error: sent 0 events to {API}; 3 remain in {db_path}, "
        "'dora push' will try them again"
    )
    assert count(db_path, "deployments") + count(db_path, "incidents") == 3
    assert rows(
        db_path, "SELECT state, count(*) AS n FROM outbox GROUP BY state ORDER BY state"
    ) == [
        {"state": "failed", "n": 1},
        {"state": "pending", "n": 2},
    ]


def test_events_imported_before_a_backend_was_set_are_sent_on_reimport(
    respx_router, dora, db_path, events_file, monkeypatch, frozen_now
):
    assert dora("import", str(events_file)).exit_code == 0
    monkeypatch.setenv("DATADOG_SITE", "datadoghq.eu")
    monkeypatch.setenv("DATADOG_API_KEY", "0123456789abcdef-key")
    route = respx_router.post(url__regex=rf"{API}/api/v2/dora/(deployment|failure)").mock(
        return_value=httpx.Response(202)
    )

    result = dora("import", "--backend", "datadog", str(events_file))

    assert result.exit_code == 0, result.stderr
    assert "0 new, 0 updated, 3 unchanged." in result.stderr
    assert len(route.calls) == 3


def test_an_id_given_twice_with_other_content_is_an_invalid_record(
    dora, db_path, tmp_path, frozen_now
):
    opened = {"type": "incident", "id": "incident-000000000003", "team": "core",
              "started_at": "2026-11-01T10:00:00Z"}  # fmt: skip
    resolved = {**opened, "finished_at": "2026-11-01T10:30:00Z"}
    path = write_ndjson(tmp_path / "twice.ndjson", [opened, opened, resolved])

    refused = dora("import", str(path))
    skipped = dora("import", "--skip-invalid", str(path))
    again = dora("import", "--skip-invalid", str(path))

    assert refused.exit_code == 2
    assert refused.stderr.splitlines()[0] == (
        f"dora: error: {path}:3: id: 'incident-000000000003' is also on {path}:1, "
        "with other content"
    )
    assert skipped.stderr.endswith("1 new, 0 updated, 0 unchanged.\n")  # the same line twice
    assert again.stderr.endswith("0 new, 0 updated, 1 unchanged.\n")
    assert rows(db_path, "SELECT finished_at FROM incidents") == [{"finished_at": None}]


def test_a_terminal_gets_a_progress_bar_and_ci_logs_do_not(
    dora, db_path, events_file, monkeypatch, frozen_now
):
    import sys

    from dora.cli import _runtime

    monkeypatch.setattr(_runtime, "shows_progress", lambda: True)
    with_bar = dora("import", str(events_file))
    monkeypatch.undo()
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    in_ci = _runtime.shows_progress()

    assert with_bar.exit_code == 0
    assert "Reading" in with_bar.stderr
    assert not in_ci


# progress on a terminal

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def frames(shown: str) -> list[str]:
    """What a terminal showed, a frame (or a line) at a time: escape sequences left out, cut
    where the cursor went back to the start of a line."""
    return [f.strip() for f in re.split(r"[\r\n]+", _ESCAPES.sub("", shown)) if f.strip()]


def last_frame(shown: str, step: str) -> str:
    return [f for f in frames(shown) if f.startswith(f"{step} ")][-1]


def steps(shown: str) -> list[str]:
    """The first word of each frame, each run of them once: the steps shown, in order."""
    found: list[str] = []
    for frame in frames(shown):
        if not found or found[-1] != frame.split()[0]:
            found.append(frame.split()[0])
    return found


def many(n: int) -> list[dict]:
    """``n`` events: deployments of seven services that ship a commit each, and every
    tenth an incident."""
    records: list[dict] = []
    for i in range(n):
        at = f"2026-11-01T{i // 60 % 24:02}:{i % 60:02}:00Z"
        service = f"service-{i % 7}"
        if i % 10:
            records.append({
                "type": "deployment", "id": f"deploy-{i:014d}", "service": service,
                "env": "prod", "started_at": at, "finished_at": at,
                "commits": [{"sha": f"{i:040x}", "committed_at": "2026-10-31T00:00:00Z"}],
            })  # fmt: skip
        else:
            records.append({"type": "incident", "id": f"incident-{i:012d}",
                            "services": [service], "started_at": at})  # fmt: skip
    return records


def on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the real ``dora`` with its stderr on a pseudo-terminal: its exit status and what
    the terminal was sent."""
    import pty
    import select

    master, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "dora", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=terminal, env=env,
    )  # fmt: skip
    os.close(terminal)
    shown = b""
    try:
        while select.select([master], [], [], 60)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the process has closed the terminal
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(master)
    return process.wait(timeout=60), shown.decode().replace("\r\n", "\n")


@pytest.mark.parametrize(
    ("stderr", "setting", "shows"),
    [
        ("terminal", {}, True),
        ("terminal", {"CI": "true"}, False),
        ("terminal", {"TERM": "dumb"}, False),
        ("pipe", {}, False),
    ],
    ids=["a terminal", "CI", "a dumb terminal", "a pipe"],
)
def test_a_real_import_shows_its_progress_on_a_terminal_only(
    tmp_path, frozen_now, stderr, setting, shows
):
    events = write_ndjson(tmp_path / "many.ndjson", many(1_200))
    store = tmp_path / "terminal.db"
    args = ["import", str(events), "--db", str(store)]
    src = str(Path(dora_package.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src, "TERM": "xterm-256color", **setting}

    if stderr == "terminal":
        status, shown = on_a_terminal(args, env)
    else:
        done = subprocess.run(
            [sys.executable, "-m", "dora", *args], env=env, capture_output=True, text=True
        )
        status, shown = done.returncode, done.stderr

    summary = (
        f"Imported 1,200 events from {events} into {store}: 1,200 new, 0 updated, 0 unchanged."
    )
    assert status == 0, shown
    assert count(store, "deployments") + count(store, "incidents") == 1_200
    if not shows:
        assert shown == summary + "\n"
        return
    assert steps(shown) == ["Reading", "Writing", "Imported"]
    assert re.fullmatch(
        r"Reading ━+ ([0-9.]+)/\1 kB 1,200 records \d:\d\d:\d\d", last_frame(shown, "Reading")
    )
    assert re.fullmatch(r"Writing ━+ 1200/1200 \d:\d\d:\d\d", last_frame(shown, "Writing"))
    assert frames(shown)[-1] == summary


def test_on_a_terminal_progress_covers_reading_writing_and_sending(
    respx_router, dora, db_path, events_file, datadog, monkeypatch, frozen_now
):
    for kind in ("deployment", "failure"):
        respx_router.post(f"{API}/api/v2/dora/{kind}").mock(return_value=httpx.Response(202))
    monkeypatch.setattr(_runtime, "shows_progress", lambda: True)

    result = dora("import", str(events_file))

    assert result.exit_code == 0, result.stderr
    assert steps(result.stderr) == ["Reading", "Writing", "Imported", "Sending", "Sent"]
    assert " 3 records " in last_frame(result.stderr, "Reading")
    assert " 3/3 " in last_frame(result.stderr, "Writing")
    assert " 3/3 " in last_frame(result.stderr, "Sending")
    bars = ("Reading ", "Writing ", "Sending ")
    assert [line for line in frames(result.stderr) if not line.startswith(bars)] == [
        f"Imported 3 events from {events_file} into {db_path}: 3 new, 0 updated, 0 unchanged.",
        f"Sent 3 events to {API}.",
    ]
    assert result.stderr.endswith(f"\x1b[2KSent 3 events to {API}.\n")  # after the bar is gone


def test_the_progress_display_changes_neither_the_store_nor_the_summary(
    dora, db_path, tmp_path, monkeypatch, frozen_now
):
    events = write_ndjson(tmp_path / "many.ndjson", many(1_200))  # more than one chunk
    plain = tmp_path / "plain.db"

    without = dora("import", str(events), "--db", str(plain))
    monkeypatch.setattr(_runtime, "shows_progress", lambda: True)
    with_bar = dora("import", str(events))

    assert without.exit_code == with_bar.exit_code == 0, with_bar.stderr
    summary = "Imported 1,200 events from {} into {}: 1,200 new, 0 updated, 0 unchanged.\n"
    assert without.stderr == summary.format(events, plain)
    assert with_bar.stderr.endswith(summary.format(events, db_path))
    assert " 1200/1200 " in last_frame(with_bar.stderr, "Writing")
    assert dora("export").stdout == dora("export", "--db", str(plain)).stdout
    assert count(db_path, "deployment_commits") == count(plain, "deployment_commits") == 1_080


def test_a_file_without_records_imports_nothing_and_makes_no_store(dora, db_path, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("type,service,started_at,finished_at\n")

    result = dora("import", str(path))

    assert result.exit_code == 0
    assert result.stderr == f"Nothing to import: {path} holds no valid records.\n"
    assert not db_path.exists()


def test_reimporting_deployments_that_list_the_same_commit_changes_nothing(
    dora, db_path, tmp_path, frozen_now
):
    def deployment(n: int, shas: list[str]) -> dict:
        return {
            "type": "deployment", "id": f"deploy-000000000010{n}", "service": "api",
            "env": "prod", "started_at": f"2026-11-0{n}T10:00:00Z",
            "finished_at": f"2026-11-0{n}T10:05:00Z",
            "commits": [{"sha": sha, "committed_at": "2026-10-31T10:00:00Z"} for sha in shas],
        }  # fmt: skip

    # the later deployment lists a commit the earlier one shipped already (a redeploy)
    path = write_ndjson(
        tmp_path / "shared.ndjson",
        [deployment(1, [SHA, OTHER_SHA]), deployment(2, [OTHER_SHA, "c" * 40])],
    )
    assert dora("import", str(path)).exit_code == 0
    before = store_contents(db_path)

    again = dora("import", str(path))

    assert again.stderr.endswith("0 new, 0 updated, 2 unchanged.\n")
    assert store_contents(db_path) == before
    assert rows(db_path, "SELECT deployment_id, sha FROM deployment_commits ORDER BY 1, 2") == [
        {"deployment_id": "deploy-0000000000101", "sha": SHA},
        {"deployment_id": "deploy-0000000000101", "sha": OTHER_SHA},
        {"deployment_id": "deploy-0000000000102", "sha": "c" * 40},
    ]


def test_times_relative_to_now_and_nan_are_refused_in_a_file(dora, db_path, tmp_path, frozen_now):
    path = tmp_path / "relative.ndjson"
    path.write_text(
        '{"type":"deployment","service":"api","started_at":"-1d","finished_at":"now"}\n'
        '{"type":"incident","team":"core","started_at":NaN}\n'
    )

    result = dora("import", str(path))

    assert result.exit_code == 2
    assert result.stderr.splitlines()[:2] == [
        f"dora: error: {path}:1: started_at: '-1d' is relative to now; "
        "a file needs the time itself",
        f"dora: error: {path}:2: started_at: 'nan' is not a timestamp: use ISO 8601 "
        "(2026-11-24T09:30:00Z), Unix time in s, ms or ns, 'now', or an offset such as -15m",
    ]


def test_a_csv_that_cannot_be_read_to_its_end_imports_nothing_even_skipping(
    dora, db_path, tmp_path, frozen_now
):
    path = tmp_path / "broken.csv"
    path.write_text(
        "type,team,started_at\n"
        "incident,core,2026-11-01T10:00:00Z\n"
        'incident,"co"re,2026-11-01T11:00:00Z\n'
        "incident,core,2026-11-01T12:00:00Z\n"
    )

    result = dora("import", "--skip-invalid", str(path))

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"dora: error: {path}:3: not CSV (',' expected after '\"'); the rest of the file "
        "cannot be read",
        "dora: error: 1 invalid record, in a file that cannot be read to its end; "
        "nothing was imported",
    ]
    assert not db_path.exists()


def test_an_empty_input_has_nothing_to_import(dora, db_path):
    result = dora("import", "-", input="")

    assert result.exit_code == 0
    assert result.stderr == "Nothing to import: <stdin> holds no valid records.\n"
    assert not db_path.exists()


def test_export_to_a_csv_file_writes_csv_and_keeps_the_files_mode(
    dora, db_path, events_file, tmp_path, frozen_now
):
    assert dora("import", str(events_file)).exit_code == 0
    target = tmp_path / "backup.csv"
    target.write_text("old\n")
    target.chmod(0o640)

    result = dora("export", "-o", str(target))

    assert result.exit_code == 0
    assert target.read_text().splitlines()[0] == ",".join(interchange.CSV_COLUMNS)
    assert target.stat().st_mode & 0o777 == 0o640


def test_export_through_a_symbolic_link_replaces_the_file_it_points_to(
    dora, db_path, events_file, tmp_path, frozen_now
):
    assert dora("import", str(events_file)).exit_code == 0
    real = tmp_path / "real.ndjson"
    real.write_text("old\n")
    link = tmp_path / "link.ndjson"
    link.symlink_to(real)

    assert dora("export", "-o", str(link)).exit_code == 0

    assert link.is_symlink()
    assert len(real.read_text().splitlines()) == 3


def test_export_to_a_pipe_writes_into_it(dora, db_path, events_file, tmp_path, frozen_now):
    import os
    import threading

    assert dora("import", str(events_file)).exit_code == 0
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()

    result = dora("export", "-o", str(fifo))
    reader.join(timeout=10)

    assert result.exit_code == 0
    assert len(received[0].splitlines()) == 3
    assert fifo.is_fifo()


def test_an_interrupted_send_leaves_the_events_for_the_next_push(
    respx_router, dora, db_path, events_file, datadog, frozen_now
):
    def ctrl_c(request):
        raise KeyboardInterrupt

    respx_router.post(url__regex=rf"{API}/api/v2/dora/(deployment|failure)").mock(
        side_effect=ctrl_c
    )

    result = dora("import", str(events_file))

    assert result.exit_code == 130
    assert result.stderr.splitlines()[-2:] == [
        f"the events not sent are kept in {db_path}; 'dora push' will send them",
        "dora: error: interrupted",
    ]
    assert (
        rows(db_path, "SELECT state, claimed_until FROM outbox")
        == [{"state": "pending", "claimed_until": None}] * 3
    )


def test_json_nested_deeper_than_can_be_read_is_an_invalid_record(dora, db_path, tmp_path):
    deep = tmp_path / "deep.ndjson"
    deep.write_text("[" * 100_000 + "\n")

    result = dora("import", str(deep))

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"dora: error: {deep}:1: not an event (JSON nested too deeply)",
        "dora: error: 1 invalid record; nothing was imported "
        "(--skip-invalid imports the valid ones)",
    ]
    assert not db_path.exists()


def test_a_huge_or_spoofing_name_in_a_file_is_an_invalid_record(dora, db_path, tmp_path):
    path = tmp_path / "events.ndjson"
    base = {"type": "deployment", "started_at": "2026-11-02T09:00:00Z"}
    path.write_text(
        json.dumps({**base, "service": "s" * 1_000_000, "finished_at": "2026-11-02T09:05:00Z"})
        + "\n"
        + json.dumps({**base, "service": "ap\u202ei", "finished_at": "2026-11-02T09:05:00Z"})
        + "\n"
    )

    result = dora("import", str(path))

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"dora: error: {path}:1: service: is 1,000,000 characters long; at most 100 "
        "(Datadog's limit for a service name)",
        f"dora: error: {path}:2: service: holds U+202E RIGHT-TO-LEFT OVERRIDE, which is not "
        "seen but changes what is: use visible text only",
        "dora: error: 2 invalid records; nothing was imported "
        "(--skip-invalid imports the valid ones)",
    ]
    assert not db_path.exists()


def test_nanoseconds_are_kept_end_to_end(dora, db_path, tmp_path, respx_router, monkeypatch):
    import httpx

    path = tmp_path / "exact.ndjson"
    path.write_text(
        json.dumps(
            {
                "type": "deployment",
                "id": "deploy-to-the-nanosecond",
                "service": "api",
                "started_at": "2026-11-02T09:00:00.123456789Z",
                "finished_at": 1793610300987654321,
                "commits": [{"sha": "a" * 40, "committed_at": "2026-11-01T17:12:00.000000001Z"}],
            }
        )
        + "\n"
    )
    route = respx_router.post("https://api.datadoghq.com/api/v2/dora/deployment").mock(
        return_value=httpx.Response(202)
    )
    monkeypatch.setenv("DD_API_KEY", "0123456789abcdef")

    imported = dora("import", str(path), "--backend", "datadog")
    exported = dora("export")

    assert imported.exit_code == 0, imported.stderr
    assert rows(db_path, "SELECT started_at, finished_at FROM deployments") == [
        {"started_at": 1793610000123456789, "finished_at": 1793610300987654321}
    ]
    assert rows(db_path, "SELECT committed_at FROM deployment_commits") == [
        {"committed_at": 1793553120000000001}
    ]
    attributes = json.loads(route.calls[0].request.content)["data"]["attributes"]
    assert (attributes["started_at"], attributes["finished_at"]) == (
        1793610000123456789,
        1793610300987654321,
    )
    record = json.loads(exported.stdout)
    assert (record["started_at"], record["finished_at"]) == (
        "2026-11-02T09:00:00.123456789Z",
        "2026-11-02T09:05:00.987654321Z",
    )
    assert record["commits"] == [
        {"sha": "a" * 40, "committed_at": "2026-11-01T17:12:00.000000001Z"}
    ]


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
def test_commit_subjects_and_reverts_round_trip(dora, tmp_path, fmt, monkeypatch, frozen_now):
    shipped = [
        {"sha": SHA, "committed_at": "2026-10-31T18:00:00Z", "subject": "Hotfix: a@b; c\\d"},
        {
            "sha": OTHER_SHA,
            "committed_at": "2026-10-31T19:00:00Z",
            "subject": 'Revert "feat: cache"',
            "reverts": "c" * 40,
        },
        {"sha": "d" * 40, "committed_at": "2026-10-31T20:00:00Z", "reverts": "1234567"},
        {"sha": "e" * 40, "committed_at": "2026-10-31T21:00:00Z"},
    ]
    records = [
        {"type": "deployment", "id": "deploy-with-subjects", "service": "api",
         "started_at": "2026-11-01T10:00:00Z", "finished_at": "2026-11-01T10:05:00Z",
         "commits": shipped},
    ]  # fmt: skip
    monkeypatch.setenv("DORA_DB", str(tmp_path / "first.db"))
    assert dora("import", str(write_ndjson(tmp_path / "in.ndjson", records))).exit_code == 0
    first = dora("export", "--format", fmt, "--output", str(tmp_path / f"first.{fmt}"))
    monkeypatch.setenv("DORA_DB", str(tmp_path / "second.db"))
    imported = dora("import", str(tmp_path / f"first.{fmt}"))
    second = dora("export", "--format", fmt)

    assert (first.exit_code, imported.exit_code) == (0, 0), imported.stderr
    assert second.stdout == (tmp_path / f"first.{fmt}").read_text()
    stored = rows(
        tmp_path / "second.db",
        "SELECT sha, subject, reverts FROM deployment_commits ORDER BY committed_at",
    )
    assert stored == [
        {"sha": c["sha"], "subject": c.get("subject"), "reverts": c.get("reverts")} for c in shipped
    ]
    if fmt == "csv":
        assert (
            f"{SHA}@2026-10-31T18:00:00Z@@Hotfix: a@b\\; c\\\\d;"
            f'{OTHER_SHA}@2026-10-31T19:00:00Z@{"c" * 40}@Revert ""feat: cache""'
        ) in second.stdout


def test_a_commit_with_a_bad_subject_or_reverts_is_an_invalid_record(dora, db_path, tmp_path):
    base = {"type": "deployment", "service": "api", "started_at": "2026-11-01T10:00:00Z",
            "finished_at": "2026-11-01T10:05:00Z"}  # fmt: skip
    commit = {"sha": SHA, "committed_at": "2026-10-31T18:00:00Z"}
    path = write_ndjson(
        tmp_path / "bad.ndjson",
        [
            {**base, "commits": [{**commit, "subject": "two\nlines"}]},
            {**base, "commits": [{**commit, "reverts": "not-a-sha"}]},
            {**base, "commits": [{**commit, "author": "someone"}]},
        ],
    )

    result = dora("import", str(path))

    assert result.exit_code == 2
    assert result.stderr.splitlines()[:3] == [
        f"dora: error: {path}:1: commits: commit {SHA[:12]}: the subject is one line of at "
        "most 1,024",
        f"dora: error: {path}:2: commits: commit {SHA[:12]}: reverts is the SHA of a commit "
        "(7 to 64 hex)",
        f"dora: error: {path}:3: commits: each commit has a sha and a committed_at, and may "
        "have a subject and the sha it reverts, only",
    ]
    assert not db_path.exists()


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
def test_an_incidents_deployment_round_trips(dora, tmp_path, fmt, monkeypatch, frozen_now):
    records = [
        {"type": "incident", "id": "incident-with-a-cause", "services": ["api"],
         "started_at": "2026-11-01T11:00:00Z", "deployment_id": "deploy-0000000000001"},
    ]  # fmt: skip
    monkeypatch.setenv("DORA_DB", str(tmp_path / "first.db"))
    assert dora("import", str(write_ndjson(tmp_path / "in.ndjson", records))).exit_code == 0
    first = dora("export", "--format", fmt, "--output", str(tmp_path / f"first.{fmt}"))
    monkeypatch.setenv("DORA_DB", str(tmp_path / "second.db"))
    assert dora("import", str(tmp_path / f"first.{fmt}")).exit_code == 0

    assert first.exit_code == 0
    assert dora("export", "--format", fmt).stdout == (tmp_path / f"first.{fmt}").read_text()
    assert rows(tmp_path / "second.db", "SELECT deployment_id FROM incidents") == [
        {"deployment_id": "deploy-0000000000001"}
    ]
