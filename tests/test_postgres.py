"""What is PostgreSQL's own: the URL and its password, the driver as an extra, connections
that fail, a schema that is not ours, migrations, and moving a store across engines.

What both engines share is tested on both, in the store, metrics, import/export, delivery
and concurrency tests (the ``store_db`` fixture)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import threading

import pytest

from conftest import count, everything, execute, pg_connect, pg_rows, rows
from dora import timeparse
from dora.events import Incident, build
from dora.store import migrations, open_store
from dora.store.postgres import MIGRATIONS
from test_delivery import deploy, fake_datadog, outbox, run  # noqa: F401 - a fixture
from test_e2e import dora_command

# Each test has a PostgreSQL store of its own (an empty schema; DORA_DB points at it).
pytestmark = [
    pytest.mark.usefixtures("store_db"),
    pytest.mark.parametrize("store_db", ["postgres"], indirect=True),
]

PASSWORD = "hunter2"


@pytest.fixture
def pg(store_db):
    return store_db


def with_password(url: str) -> str:
    """The store URL with a role and password in it (the test server trusts any password)."""
    return url.replace("postgresql://", f"postgresql://postgres:{PASSWORD}@", 1)


def test_a_password_in_the_url_is_shown_nowhere_and_kept_nowhere(dora, pg, monkeypatch):
    url = with_password(pg)
    monkeypatch.setenv("DORA_DB", url)
    shown = url.replace("hunter2", "***")

    recorded = dora("deployment", "--service", "api", "--started-at", "-5m", "--skip-git")
    listed = dora("--verbose", "incident", "list")
    monkeypatch.setenv("COLUMNS", "300")  # wide enough for dora config not to cut the URL
    settings = dora("config")

    assert recorded.exit_code == listed.exit_code == settings.exit_code == 0
    deployment_id = recorded.stdout.strip()
    assert recorded.stderr == f"Recorded deployment {deployment_id} (api) in {shown}\n"
    assert shown in settings.stdout
    for result in (recorded, listed, settings):
        assert "hunter2" not in result.stdout + result.stderr
    assert deployment_id in everything(pg)
    assert "hunter2" not in everything(pg)


def test_without_the_driver_a_postgresql_url_is_one_line_naming_the_extra(dora, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name, *a)
    )
    monkeypatch.setenv("DORA_DB", "postgresql://ci:hunter2@db.example.com/dora")

    result = dora("deployment", "--service", "api", "--started-at", "-5m")

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "dora: error: a PostgreSQL store needs the psycopg driver: pip install 'dora[postgres]'\n"
    )


@pytest.mark.parametrize("verbose", [[], ["--verbose"]])
def test_a_server_that_does_not_answer_is_one_line_and_hides_the_password(dora, verbose):
    url = "postgresql://ci:hunter2@127.0.0.1:9/dora"  # the discard port: nothing listens

    result = dora(*verbose, "deployment", "--service", "api", "--started-at", "-5m", "--db", url)

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.splitlines()[-1] == (
        "dora: error: cannot connect to the store at postgresql://ci:***@127.0.0.1:9/dora: "
        'connection to server at "127.0.0.1", port 9 failed: Connection refused'
    )
    assert "hunter2" not in result.stderr


@pytest.mark.parametrize(
    "url", ["postgresql://ci:pass word@db.example.com/dora", "postgresql://db/dora?secret=x"]
)
def test_a_malformed_url_is_a_usage_error_that_repeats_nothing_of_it(dora, url):
    # outside a git repository: the error comes before git is asked (no warning about it)
    result = dora("deployment", "--service", "api", "--started-at", "-5m", "--db", url)

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "dora: error: the store is not a valid PostgreSQL URL (libpq's connection URI form, "
        "with libpq's parameters; percent-encode special characters in the user name and "
        "password)\n"
    )


def test_a_missing_database_is_one_line(dora, pg):
    url = pg.replace("/dora_test_", "/no_such_database_", 1)

    result = dora("metrics", "--db", url)

    assert result.exit_code == 1
    assert result.stderr == (
        f"dora: error: cannot connect to the store at {url}: connection to server at "
        f'"127.0.0.1", port {url.split(":")[2].split("/")[0]} failed: '
        f'FATAL: database "{url.split("/")[3].split("?")[0]}" does not exist\n'
    )


def test_a_schema_with_someone_elses_tables_is_left_untouched(dora, pg):
    execute(pg, "CREATE TABLE deployments (id INTEGER, note TEXT)")
    execute(pg, "INSERT INTO deployments VALUES (1, 'theirs')")

    result = dora("deployment", "--service", "api", "--started-at", "-5m", "--skip-git")

    assert result.exit_code == 1
    assert result.stderr == (
        f"dora: error: {pg} has a table 'deployments' that dora did not make; left untouched "
        "(give dora a database or schema of its own)\n"
    )
    assert pg_rows(pg, "SELECT * FROM deployments") == [{"id": 1, "note": "theirs"}]
    assert not pg.exists()  # no dora_migrations either


def test_a_new_store_gets_every_migration_with_its_record(pg):
    open_store(pg).close()

    applied = rows(pg, "SELECT name FROM dora_migrations ORDER BY applied_at")
    assert [row["name"] for row in applied] == [name for name, _ in migrations.MIGRATIONS]
    assert [name for name, _ in MIGRATIONS] == [name for name, _ in migrations.MIGRATIONS]


def test_a_store_from_a_newer_dora_is_refused(dora, pg):
    open_store(pg).close()
    execute(pg, "INSERT INTO dora_migrations (name, applied_at) VALUES ('m999_future', 0)")

    result = dora("metrics")

    assert (result.exit_code, result.stderr) == (
        1,
        "dora: error: the store was written by a newer dora (it has migration m999_future); "
        "upgrade dora to use it\n",
    )


def test_reading_an_empty_schema_creates_nothing(dora, pg):
    result = dora("incident", "list")

    assert result.exit_code == 0
    assert not pg.exists()


def test_ids_are_ordered_bytewise_as_on_sqlite(dora, pg):
    for incident_id in ("inc-b-0000000001", "inc-B-0000000001", "inc_a-0000000001"):
        args = ["incident", "open", "--id", incident_id, "--service", "api", "--skip-git"]
        assert dora(*args, "--started-at", "2026-11-01T00:00:00Z").exit_code == 0

    listed = dora("incident", "list")
    prefix = dora("incident", "resolve", "inc_")  # "_" is not a LIKE wildcard here

    ids = [line.split()[0] for line in listed.stdout.splitlines()[1:]]
    assert ids == ["inc_a-0000000001", "inc-b-0000000001", "inc-B-0000000001"]  # id DESC
    assert prefix.exit_code == 0, prefix.stderr
    assert rows(pg, "SELECT id FROM incidents WHERE finished_at IS NOT NULL") == [
        {"id": "inc_a-0000000001"}
    ]


def test_export_from_sqlite_imported_into_postgresql_moves_the_store(dora, pg, tmp_path):
    sqlite = str(tmp_path / "old.db")
    common = ["--skip-git", "--db", sqlite]
    dora("deployment", "--service", "api", "--env", "prod", "--started-at", "-1h", *common)
    opened = dora("incident", "open", "--service", "api", "--service", "web", *common)
    dora("incident", "resolve", opened.stdout.strip(), "--db", sqlite)
    dora("incident", "open", "--service", "db", "--name", "replica lag", *common)
    exported = dora("export", "--db", sqlite)

    imported = dora("import", "-", input=exported.stdout)
    again = dora("export")

    assert imported.exit_code == 0, imported.stderr
    assert imported.stderr == (
        f"Imported 3 events from <stdin> into {pg}: 3 new, 0 updated, 0 unchanged.\n"
    )
    assert again.stdout == exported.stdout
    assert [json.loads(line)["type"] for line in again.stdout.splitlines()] == [
        "deployment",
        "incident",
        "incident",
    ]


def test_a_connection_lost_while_sending_keeps_the_event_for_push(pg, fake_datadog):  # noqa: F811
    def drop_dora_connections() -> None:
        execute(
            pg,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'dora' AND datname = current_database()",
        )

    fake_datadog.on_request = drop_dora_connections
    lost = deploy(fake_datadog)
    fake_datadog.on_request = None
    deployment_id = lost.stdout.strip()

    assert lost.returncode == 1
    assert lost.stderr.splitlines()[-2:] == [
        # sent, then the store is lost before the delivery is recorded
        f"dora: error: cannot read the store at {pg}: "
        "terminating connection due to administrator command",
        f"dora: the deployment is kept in {pg}; 'dora push' will send it",
    ]
    assert [(r["event_id"], r["state"]) for r in outbox(pg)] == [(deployment_id, "pending")]
    # the claim of the lost process runs out (its retry budget and a margin), then:
    execute(pg, "UPDATE outbox SET claimed_until = NULL")
    pushed = run(fake_datadog, "push")

    assert pushed.returncode == 0, pushed.stderr
    assert fake_datadog.accepted() == [deployment_id, deployment_id]  # sent again, by id
    assert [(r["event_id"], r["state"]) for r in outbox(pg)] == [(deployment_id, "delivered")]
    assert count(pg, "deployments") == 1


def test_an_unescaped_at_in_the_password_is_refused_without_repeating_it(dora):
    url = "postgresql://ci:p@SECRETTAIL@127.0.0.1/dora"

    result = dora("--verbose", "incident", "list", "--db", url)

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-1] == (
        "dora: error: the store URL has '@' in its user name or password: percent-encode it as %40"
    )
    assert "SECRETTAIL" not in result.stderr


def test_a_libpq_key_value_string_is_refused_not_taken_for_a_file(dora, tmp_path):
    target = "host=127.0.0.1 password=SECRETK dbname=dora"

    result = dora("deployment", "--service", "api", "--started-at", "-5m", "--db", target)

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "dora: error: the store looks like a libpq 'key=value' string: give a postgresql:// URL\n"
    )
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == []


def test_writers_wait_for_each_other_even_if_the_server_defaults_to_serializable(pg):
    url = pg + "%20-cdefault_transaction_isolation%3Dserializable"
    incident = build(Incident, {"id": "incident-000000001", "services": ["a"], "started_at": "-1h"})
    with open_store(url) as store:
        store.save(incident)
    stores = [open_store(url) for _ in range(6)]
    try:
        results = []
        threads = [
            threading.Thread(
                target=lambda s=s: results.append(s.finish_incident(incident.id, timeparse.now()))
            )
            for s in stores
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for store in stores:
            store.close()

    assert sorted(results) == [False] * 5 + [True]


def test_imports_at_once_of_the_same_events_in_opposite_orders_both_succeed(pg, tmp_path):
    lines = [
        json.dumps(
            {
                "type": "deployment",
                "id": f"deploy-{n:010d}",
                "service": f"svc-{n % 7}",
                "started_at": "2026-11-01T00:00:00Z",
                "finished_at": f"2026-11-01T00:{n // 60 % 60:02d}:{n % 60:02d}Z",
                "commits": [{"sha": f"{n % 50:040x}", "committed_at": "2026-10-31T00:00:00Z"}],
            }
        )
        for n in range(1200)
    ]
    forward, backward = tmp_path / "forward.ndjson", tmp_path / "backward.ndjson"
    forward.write_text("\n".join(lines) + "\n")
    backward.write_text("\n".join(reversed(lines)) + "\n")

    procs = [
        subprocess.Popen(
            [*dora_command(), "import", str(path), "--db", pg],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in (forward, backward)
    ]
    outcomes = [
        (p.returncode, err) for p, (_, err) in ((p, p.communicate(timeout=120)) for p in procs)
    ]

    assert [code for code, _ in outcomes] == [0, 0], outcomes
    assert count(pg, "deployments") == 1200
    # each of the 50 commits credited once per service that shipped it
    assert count(pg, "deployment_commits") == len({(n % 7, n % 50) for n in range(1200)})


def test_a_writer_kept_waiting_fails_in_one_line_after_the_lock_timeout(dora, pg, monkeypatch):
    monkeypatch.setattr("dora.store.postgres.LOCK_TIMEOUT", 1)
    open_store(pg).close()
    with pg_connect(pg) as other, other.transaction():
        other.execute("SELECT pg_advisory_xact_lock(%s, 1)", (migrations.APPLICATION_ID,))
        result = dora("deployment", "--service", "api", "--started-at", "-5m", "--skip-git")

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"dora: error: cannot write to the store at {pg}: canceling statement due to lock timeout\n"
    )


def test_a_sql_ascii_database_reads_back_what_it_stored(dora, pg):
    name = "dora_test_ascii_" + pg.rsplit("_", 1)[-1].replace("-", "")
    name = "".join(c for c in name if c.isalnum() or c == "_")[:60]
    base = pg.split("?")[0].rsplit("/", 1)[0]
    with pg_connect(base + "/postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(
            f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' "
            "TEMPLATE template0"
        )
    try:
        url = f"{base}/{name}"
        assert (
            dora("incident", "open", "--service", "api", "--skip-git", "--db", url).exit_code == 0
        )
        listed = dora("incident", "list", "--db", url)
        assert listed.exit_code == 0, listed.stderr
        assert "api" in listed.stdout
    finally:
        with pg_connect(base + "/postgres") as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
