"""The store: migrations, upserts, refusing files that are not ours, failing cleanly.

What is the same on both engines runs on both (``store_db``); what is SQLite's own (files,
WAL, PRAGMAs) on SQLite. PostgreSQL's own is in test_postgres.py."""

from __future__ import annotations

import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from conftest import count, rows
from dora.errors import NotFound, StoreError
from dora.events import Deployment, Incident, build
from dora.store import migrations as m
from dora.store import open_store
from dora.store.base import stored
from dora.store.sqlite import SQLiteStore

FIXTURES = Path(__file__).parent / "fixtures"


def deployment(**fields) -> Deployment:
    return build(
        Deployment, {"service": "api", "started_at": "-1h", "finished_at": "now", **fields}
    )


def test_a_new_store_is_created_with_its_directories_in_wal_mode(tmp_path):
    path = tmp_path / "a" / "b" / "dora.db"

    with open_store(path) as store:
        store.save(deployment())

    with closing(sqlite3.connect(path)) as db, db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA application_id").fetchone() == (m.APPLICATION_ID,)
        assert db.execute("SELECT name FROM dora_migrations").fetchall() == [
            ("m001_initial",),
            ("m002_outbox",),
            ("m003_deployment_commits",),
            ("m004_strip_repository_credentials",),
            ("m005_commit_messages",),
            ("m006_change_failures",),
            ("m007_incident_deployment",),
            ("m008_outbox_marks",),
            ("m009_detection_settings",),
            ("m010_link_indexes",),
            ("m011_commit_times",),
            ("m012_commit_lead_times",),
            ("m013_link_latest",),
            ("m014_incident_links",),
            ("m015_outbox_deletions",),
            ("m016_mark_by_version",),
        ]


def test_an_old_store_upgrades_in_place_with_nothing_lost(tmp_path):
    # store-m001.db was written by dora 0.1.0 (schema m001_initial) with its own commands.
    path = tmp_path / "old.db"
    shutil.copy(FIXTURES / "store-m001.db", path)
    tables = ("deployments", "incidents", "incident_services")
    before = {t: rows(path, f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables}

    with open_store(path) as store:
        incident = store.find_incident("incident-v1-fixture-01")
        store.save(deployment(id="deploy-after-upgrade-1"))

    with closing(sqlite3.connect(path)) as db, db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)  # was "delete"
    assert {r["name"] for r in rows(path, "SELECT name FROM dora_migrations")} == {
        name for name, _ in m.MIGRATIONS
    }
    for table in tables:
        kept = rows(path, f"SELECT * FROM {table} ORDER BY 1, 2")
        columns = set(before[table][0])  # later migrations add columns, empty for old rows
        assert [
            {k: v for k, v in r.items() if k in columns}
            for r in kept
            if r.get("id") != "deploy-after-upgrade-1"
        ] == before[table]
    assert incident.services == ["api", "web"]
    assert incident.custom_tags == ["cause:deploy"]
    assert incident.name == "checkout 500s"
    assert count(path, "deployments") == 3


def test_migrations_apply_in_order_each_with_its_record(tmp_path):
    applied_in: list[str] = []

    def m900(db):
        applied_in.append("m900")
        db.execute("ALTER TABLE deployments ADD COLUMN note TEXT")

    def m003_fails(db):
        db.execute("ALTER TABLE deployments ADD COLUMN other TEXT")
        raise RuntimeError("boom")

    path = tmp_path / "dora.db"
    SQLiteStore(path).close()
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        assert m.migrate(db, [*m.MIGRATIONS, ("m900_note", m900)]) == ["m900_note"]
        assert m.migrate(db, [*m.MIGRATIONS, ("m900_note", m900)]) == []
        with pytest.raises(RuntimeError, match="boom"):
            m.migrate(db, [*m.MIGRATIONS, ("m900_note", m900), ("m901", m003_fails)])

        columns = [r[1] for r in db.execute("PRAGMA table_info(deployments)")]
        assert "note" in columns
        assert "other" not in columns  # the failed migration rolled back with its record
        assert m.applied(db) == {*(name for name, _ in m.MIGRATIONS), "m900_note"}
        assert applied_in == ["m900"]


def test_a_store_from_a_newer_dora_is_refused(tmp_path):
    path = tmp_path / "dora.db"
    SQLiteStore(path).close()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("INSERT INTO dora_migrations VALUES ('m999_future', 0)")

    with pytest.raises(StoreError) as error:
        open_store(path)

    assert str(error.value) == (
        "the store was written by a newer dora (it has migration m999_future); "
        "upgrade dora to use it"
    )


def test_upsert_by_id_replaces_fields_and_services(store_db):
    path = store_db
    first = build(
        Incident, {"id": "incident-000000001", "services": ["a", "b"], "started_at": "-1h"}
    )
    second = build(
        Incident,
        {"id": "incident-000000001", "services": ["c"], "started_at": "-1h", "finished_at": "now"},
    )

    with open_store(path) as store:
        store.save(first)
        store.save(second)
        [stored] = store.list_incidents()

    assert count(path, "incidents") == 1
    assert stored.services == ["c"]
    assert stored.finished_at == second.finished_at


def test_recorded_at_keeps_the_first_recording(store_db):
    path = store_db
    with open_store(path) as store:
        store.save(deployment(id="deploy-00000000001", version="1"))
        [first] = rows(path, "SELECT recorded_at FROM deployments")
        store.save(deployment(id="deploy-00000000001", version="2"))

    assert rows(path, "SELECT recorded_at, version FROM deployments") == [
        {"recorded_at": first["recorded_at"], "version": "2"}
    ]


def test_windows_are_read_through_indexes(tmp_path):
    path = tmp_path / "dora.db"
    SQLiteStore(path).close()
    with closing(sqlite3.connect(path)) as db, db:
        plans = {
            sql: " ".join(r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {sql}", (0, 1)))
            for sql in (
                "SELECT count(*) FROM deployments WHERE finished_at >= ? AND finished_at < ?",
                "SELECT count(*) FROM incidents WHERE started_at >= ? AND started_at < ?",
                "SELECT count(*) FROM incidents WHERE finished_at >= ? AND finished_at < ?",
            )
        }
    for sql, plan in plans.items():
        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, (sql, plan)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is a text file\n", "is not a dora database (not an SQLite file); left untouched"),
        (b"SQLite format 3\x00" + b"\xff" * 200, "cannot open the store at"),
    ],
)
def test_a_file_that_is_not_a_store_is_left_untouched(tmp_path, content, message):
    folder = tmp_path / "files"
    folder.mkdir()
    path = folder / "notes.db"
    path.write_bytes(content)

    with pytest.raises(StoreError, match="^.*" + message.replace("(", r"\(").replace(")", r"\)")):
        open_store(path)

    assert path.read_bytes() == content
    assert [p.name for p in folder.iterdir()] == ["notes.db"]  # no -wal or -journal left


def test_another_apps_sqlite_database_is_left_untouched(tmp_path):
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE things (x)")
        db.execute("INSERT INTO things VALUES (1)")
    before = path.read_bytes()

    with pytest.raises(StoreError) as error:
        open_store(path)

    assert str(error.value) == f"{path} is an SQLite database but not a dora one; left untouched"
    assert path.read_bytes() == before


def test_cli_reports_store_failures_in_one_line(dora, tmp_path):
    not_ours = tmp_path / "notes.txt"
    not_ours.write_text("hello\n")
    blocker = tmp_path / "file"
    blocker.write_text("")

    # outside a git repository: git's warning must not add a second line to a failure
    wrong = dora("deployment", "--service", "a", "--started-at", "-1m", "--db", str(not_ours))
    unwritable = dora(
        "deployment", "--service", "a", "--started-at", "-1m", "--db", str(blocker / "x" / "d.db")
    )
    directory = dora("incident", "list", "--db", str(tmp_path))

    assert (wrong.exit_code, wrong.stderr) == (
        1,
        f"dora: error: {not_ours} is not a dora database (not an SQLite file); left untouched\n",
    )
    assert (unwritable.exit_code, unwritable.stderr) == (
        1,
        f"dora: error: cannot create the store at {blocker / 'x' / 'd.db'}: "
        "part of its path is a file, not a directory\n",
    )
    assert (directory.exit_code, directory.stderr) == (
        1,
        f"dora: error: the store at {tmp_path} is a directory, not a dora database\n",
    )
    assert not_ours.read_text() == "hello\n"


def test_a_failed_write_is_one_line_and_loses_nothing(dora, db_path, frozen_now, monkeypatch):
    assert dora("deployment", "--service", "a", "--started-at", "-1m", "--skip-git").exit_code == 0

    def refuse(*args, **kwargs):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr("dora.store.sql.SQLStore._upsert", refuse)
    result = dora("deployment", "--service", "b", "--started-at", "-1m", "--skip-git")

    assert result.exit_code == 1
    assert result.stderr == (
        f"dora: error: cannot write to the store at {db_path}: "
        "attempt to write a readonly database\n"
    )
    assert rows(db_path, "SELECT service FROM deployments") == [{"service": "a"}]


def test_another_apps_empty_database_is_left_untouched(tmp_path):
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("PRAGMA user_version = 7")
    before = path.read_bytes()

    with pytest.raises(StoreError, match="is an SQLite database but not a dora one"):
        open_store(path)

    assert path.read_bytes() == before


def test_a_path_that_is_not_a_regular_file_is_refused(tmp_path):
    fifo = tmp_path / "pipe.db"
    os.mkfifo(fifo)

    with pytest.raises(StoreError) as error:
        open_store(fifo)

    assert str(error.value) == f"the store at {fifo} is not a regular file; left untouched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "pipe.db", "work"]


def test_a_missing_store_is_not_created_when_only_reading(tmp_path):
    path = tmp_path / "absent" / "dora.db"

    with pytest.raises(NotFound, match="nothing has been recorded there yet"):
        open_store(path, create=False)

    assert not path.parent.exists()


def test_finishing_an_incident_happens_once(store_db):
    path = store_db
    incident = build(Incident, {"id": "incident-000000001", "services": ["a"], "started_at": "-1h"})
    with open_store(path) as store:
        store.save(incident)
        first = store.finish_incident(incident.id, incident.started_at)
        second = store.finish_incident(incident.id, incident.started_at)

    assert (first, second) == (True, False)


def test_an_upgrade_strips_tokens_an_earlier_version_stored(store_db):
    from conftest import execute

    with open_store(store_db) as store:
        store.save(deployment(id="deploy-with-a-token-1", git={"commit_sha": "a" * 40}))
        store.save(deployment(id="deploy-without-a-token", git={"commit_sha": "b" * 40}))
    # as dora 0.x left them: an scp-like remote with its token, before m004 was applied
    execute(
        store_db, "DELETE FROM dora_migrations WHERE name = 'm004_strip_repository_credentials'"
    )
    execute(
        store_db,
        "UPDATE deployments SET repository_url = ? WHERE id = ?",
        ("user:ghp_SECRET@github.com:x/y.git?token=ghp_SECRET", "deploy-with-a-token-1"),
    )
    execute(
        store_db,
        "UPDATE deployments SET repository_url = ? WHERE id = ?",
        ("git@github.com:x/y.git", "deploy-without-a-token"),
    )

    with open_store(store_db):
        pass

    assert rows(store_db, "SELECT id, repository_url FROM deployments ORDER BY id") == [
        {"id": "deploy-with-a-token-1", "repository_url": "github.com:x/y.git"},
        {"id": "deploy-without-a-token", "repository_url": "git@github.com:x/y.git"},
    ]


def test_save_many_reports_the_events_written_after_each_chunk(store_db, monkeypatch):
    CHUNK = 100
    events = [stored(deployment(id=f"deploy-{n:012d}")) for n in range(2 * CHUNK + 7)]
    heard: list[int] = []

    with open_store(str(store_db)) as store:
        monkeypatch.setattr(type(store), "CHUNK", CHUNK)
        saved = store.save_many(events, progress=heard.append)

    assert heard == [CHUNK, 2 * CHUNK, 2 * CHUNK + 7]
    assert saved.new == count(store_db, "deployments") == 2 * CHUNK + 7


def _history(version: str) -> list[tuple[Deployment | Incident, list]]:
    """600 deployments of 4 services with 2 commits each (300 shared), and 100 incidents
    naming 2 or 3 of them: two chunks of a bulk write, each with more rows than
    PostgreSQL's bulk path (COPY) takes. ``version`` changes what a second save finds
    stored."""
    from dora.gitmeta import Commit
    from dora.timeparse import parse_timestamp

    made: list[tuple[Deployment | Incident, list]] = []
    for n in range(600):
        finished = f"2026-11-{1 + n % 20:02d}T{n // 60:02d}:{n % 60:02d}:00Z"
        deployment_ = build(
            Deployment,
            {
                "id": f"deploy-{n:012d}",
                "service": f"svc-{n % 4}",
                "env": "prod",
                "version": version,
                "started_at": finished,
                "finished_at": finished,
                "custom_tags": [f"v:{version}"],
            },
        )
        # the first commit of each deployment from the 300th on is its 300th elder's too
        # (same service and env): it is credited to the elder alone
        shas = [f"{n % 300 if k == 0 and n >= 300 else n:04d}{k}{version}" for k in (0, 1)]
        at = parse_timestamp("2026-10-01T00:00:00Z")
        commits = [Commit(sha.ljust(40, "a"), at) for sha in shas]
        made.append((deployment_, commits))
    for n in range(100):
        incident = build(
            Incident,
            {
                "id": f"incident-{n:010d}",
                "services": [f"svc-{(n + k) % 4}" for k in (0, 1, 2)[: 2 if version == "1" else 3]],
                "name": f"broke {version}",
                "started_at": f"2026-11-{1 + n % 20:02d}T11:00:00Z",
            },
        )
        made.append((incident, []))
    return made


def _kept(db) -> list[list[dict]]:
    return [
        rows(db, "SELECT id, service, version, custom_tags FROM deployments ORDER BY id"),
        rows(db, "SELECT id, name FROM incidents ORDER BY id"),
        rows(db, "SELECT * FROM incident_services ORDER BY incident_id, position"),
        rows(
            db,
            "SELECT deployment_id, sha, service, env, finished_at, lead_time "
            "FROM deployment_commits ORDER BY deployment_id, sha",
        ),
    ]


def test_a_bulk_write_keeps_what_single_writes_keep(store_db, tmp_path, monkeypatch):
    """Many rows at once take another road on PostgreSQL (COPY into a scratch table, then
    one INSERT); what is stored, and what a second write finds changed, is the same."""
    single = tmp_path / "single.db"

    for version in ("1", "2"):
        made = _history(version)
        with open_store(store_db) as store:
            monkeypatch.setattr(type(store), "CHUNK", 500)  # two chunks on either engine
            saved = store.save_many(stored(e, c or None) for e, c in made)
        with open_store(single) as store:
            for event, commits in made:
                store.save(event, commits=commits or None)

        assert (saved.new, saved.updated, saved.unchanged) == (
            (700, 0, 0) if version == "1" else (0, 700, 0)
        )
        assert _kept(store_db) == _kept(single)

    with open_store(store_db) as store:
        again = store.save_many(stored(e, c or None) for e, c in _history("2"))
    assert (again.new, again.updated, again.unchanged) == (0, 0, 700)
    services, commits = _kept(store_db)[2:]
    assert (len(services), len(commits)) == (300, 900)
