"""The SQLite schema, as named migrations applied in order and recorded in ``dora_migrations``.

Migrations are append-only: once released, a migration is never edited; a change of schema
is a new function added at the end of ``MIGRATIONS``. Each runs in its own transaction
together with its record, under a write lock, so that several processes opening a new or old
store at the same moment apply each migration exactly once.

Timestamps are integer nanoseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from dora.errors import StoreError

if TYPE_CHECKING:
    from dora.store.sql import Connection

Migration = tuple[str, Callable[[sqlite3.Connection], None]]


#: ``PRAGMA application_id`` of a dora store ("dora" in ASCII): what tells our files apart.
APPLICATION_ID = 0x646F7261


def m001_initial(db: sqlite3.Connection) -> None:
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute(
        """
        CREATE TABLE deployments (
            id TEXT PRIMARY KEY,
            service TEXT NOT NULL,
            env TEXT,
            version TEXT,
            team TEXT,
            started_at INTEGER NOT NULL,
            finished_at INTEGER NOT NULL,
            repository_url TEXT,
            commit_sha TEXT,
            custom_tags TEXT NOT NULL DEFAULT '[]',
            recorded_at INTEGER NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX deployments_finished_at ON deployments (finished_at)")
    db.execute("CREATE INDEX deployments_service_finished_at ON deployments (service, finished_at)")
    db.execute(
        """
        CREATE TABLE incidents (
            id TEXT PRIMARY KEY,
            name TEXT,
            severity TEXT,
            env TEXT,
            version TEXT,
            team TEXT,
            started_at INTEGER NOT NULL,
            finished_at INTEGER,
            repository_url TEXT,
            commit_sha TEXT,
            custom_tags TEXT NOT NULL DEFAULT '[]',
            recorded_at INTEGER NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX incidents_started_at ON incidents (started_at)")
    db.execute("CREATE INDEX incidents_finished_at ON incidents (finished_at)")
    db.execute(
        """
        CREATE TABLE incident_services (
            incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
            service TEXT NOT NULL,
            position INTEGER NOT NULL,
            PRIMARY KEY (incident_id, service)
        )
        """
    )
    db.execute("CREATE INDEX incident_services_service ON incident_services (service)")


def m002_outbox(db: sqlite3.Connection) -> None:
    """Delivery state of events bound for a backend: the outbox ``dora push`` drains.

    An event recorded for the local backend only has no row here.
    """
    db.execute(
        """
        CREATE TABLE outbox (
            kind TEXT NOT NULL CHECK (kind IN ('deployment', 'incident')),
            event_id TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            queued_at INTEGER NOT NULL,
            delivered_at INTEGER,
            claimed_until INTEGER,
            PRIMARY KEY (kind, event_id)
        )
        """
    )
    db.execute("CREATE INDEX outbox_undelivered ON outbox (state, queued_at)")


def m003_deployment_commits(db: sqlite3.Connection) -> None:
    """The commits each deployment shipped, with their commit times: what lead time for
    changes is measured from. A deployment recorded without git data has none."""
    db.execute(
        """
        CREATE TABLE deployment_commits (
            deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
            sha TEXT NOT NULL,
            committed_at INTEGER NOT NULL,
            PRIMARY KEY (deployment_id, sha)
        )
        """
    )
    db.execute("CREATE INDEX deployment_commits_sha ON deployment_commits (sha)")
    db.execute(
        "CREATE INDEX deployments_service_env_finished_at "
        "ON deployments (service, env, finished_at)"
    )


def m004_strip_repository_credentials(db: Connection) -> None:
    """Earlier versions kept the password, token, query and fragment of scp-like remotes
    (``user:TOKEN@host:path``, ``git@host:path?token=...``) and of ``transport::`` remotes
    in the repository URLs they stored: store them as ``redact.strip_credentials`` does now.

    Written once for both engines (``?`` placeholders), and run by each in its migration's
    transaction. Reads each distinct URL once, so a large store pays for its repositories,
    not its events.
    """
    from dora.redact import strip_credentials

    for table in ("deployments", "incidents"):
        urls = db.execute(
            f"SELECT DISTINCT repository_url FROM {table} WHERE repository_url IS NOT NULL"
        ).fetchall()
        changed = [(clean, url) for (url,) in urls if (clean := strip_credentials(url)) != url]
        if changed:
            db.executemany(
                f"UPDATE {table} SET repository_url = ? WHERE repository_url = ?", changed
            )


#: m005 for both engines: SQL the two understand alike.
M005_COMMIT_MESSAGES = (
    "ALTER TABLE deployment_commits ADD COLUMN subject TEXT",
    "ALTER TABLE deployment_commits ADD COLUMN reverts TEXT",
    "CREATE INDEX deployment_commits_reverts ON deployment_commits (reverts) "
    "WHERE reverts IS NOT NULL",
)


def m005_commit_messages(db: Connection) -> None:
    """What change-failure detection reads of each shipped commit: its subject (the hotfix
    rule) and the commit it reverts (the revert rule). Commits recorded before have
    neither."""
    for statement in M005_COMMIT_MESSAGES:
        db.execute(statement)


#: m006 for both engines, but for the types of ids (``{id}``) and of times (``{time}``).
M006_CHANGE_FAILURES = (
    """CREATE TABLE change_failures (
        cause_id {id} NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
        failed_id {id} NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
        rule TEXT NOT NULL,
        remediation_type TEXT NOT NULL,
        detail TEXT NOT NULL,
        PRIMARY KEY (cause_id, failed_id, rule)
    )""",
    "CREATE INDEX change_failures_failed_id ON change_failures (failed_id)",
    """CREATE TABLE deployment_marks (
        deployment_id {id} PRIMARY KEY REFERENCES deployments (id) ON DELETE CASCADE,
        failed INTEGER NOT NULL,
        remediation_id {id},
        remediation_version TEXT,
        remediation_type TEXT,
        marked_at {time} NOT NULL
    )""",
    # a rollback's target by SHA (a version without SHA is found along the finish index)
    "CREATE INDEX deployments_service_env_sha ON deployments (service, env, commit_sha)",
)


def m006_change_failures(db: sqlite3.Connection) -> None:
    """Change failures on deployments (``dora.failures``): each effect of the rules as
    deployments are recorded (``change_failures``: which deployment failed, by which rule,
    shown by which deployment), the marks people give (``deployment_marks``), and the
    index that finds a rollback's target."""
    for statement in M006_CHANGE_FAILURES:
        db.execute(statement.format(id="TEXT", time="INTEGER"))


def m007_incident_deployment(db: sqlite3.Connection) -> None:
    """The deployment an incident names as its cause (``dora incident open --deployment``):
    the link a report uses before any it finds itself."""
    db.execute("ALTER TABLE incidents ADD COLUMN deployment_id TEXT")


#: The outbox's kinds from m008 on: a mark (``dora deployment mark``) is sent as well.
M008_OUTBOX_KINDS = "kind IN ('deployment', 'incident', 'mark')"


def m008_outbox_marks(db: sqlite3.Connection) -> None:
    """Marks go through the outbox too (kind ``mark``, keyed by the deployment's id)."""
    _outbox_kinds(db, M008_OUTBOX_KINDS)


def _outbox_kinds(db: sqlite3.Connection, kinds: str) -> None:
    """The outbox with the CHECK ``kinds`` on its kinds. SQLite cannot alter a CHECK: the
    table is made again under its name, rows and index kept."""
    db.execute(
        f"""
        CREATE TABLE outbox_new (
            kind TEXT NOT NULL CHECK ({kinds}),
            event_id TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            queued_at INTEGER NOT NULL,
            delivered_at INTEGER,
            claimed_until INTEGER,
            PRIMARY KEY (kind, event_id)
        )
        """
    )
    columns = "kind, event_id, state, attempts, last_error, queued_at, delivered_at, claimed_until"
    db.execute(f"INSERT INTO outbox_new ({columns}) SELECT {columns} FROM outbox")
    db.execute("DROP TABLE outbox")
    db.execute("ALTER TABLE outbox_new RENAME TO outbox")
    db.execute("CREATE INDEX outbox_undelivered ON outbox (state, queued_at)")


#: m009 for both engines: SQL the two understand alike.
M009_DETECTION_SETTINGS = (
    "CREATE TABLE detection_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


def m009_detection_settings(db: Connection) -> None:
    """The settings the stored change failures were found with (``hotfix_pattern``), so that
    a command given another finds them again. Left empty: a store without a stored pattern
    has its effects found again (``detection.rescan_all``) by the first command that writes
    a deployment or reports, which is what computes, once, the effects of the deployments
    recorded before m006 (whose ``change_failures`` it made empty). That runs as an ordinary
    write that keeps other writers out, with the pattern the command was given; here it
    would run under the migration lock, which writers already at work do not wait for, and
    with the default pattern only."""
    for statement in M009_DETECTION_SETTINGS:
        db.execute(statement)


#: m010 for both engines: what linking incidents to deployments seeks on (``dora.verdicts``).
M010_LINK_INDEXES = (
    # the few incidents that name their deployment, found without reading the others
    "CREATE INDEX incidents_deployment_id ON incidents (deployment_id) "
    "WHERE deployment_id IS NOT NULL",
    # a team's incident (no service): its team's latest deployment, in its env or any
    "CREATE INDEX deployments_team_env_finished_at ON deployments (team, env, finished_at)",
    "CREATE INDEX deployments_team_finished_at ON deployments (team, finished_at)",
    # a rollback's target by version, for deployments without a SHA (by SHA: m006's)
    "CREATE INDEX deployments_service_env_version ON deployments (service, env, version) "
    "WHERE commit_sha IS NULL",
)


def m010_link_indexes(db: sqlite3.Connection) -> None:
    """Indexes for linking incidents to deployments at report time (each incident's latest
    deployment before it is one seek, by service or by team, whatever the store's size)
    and for finding a rollback's target by version as a deployment is recorded."""
    for statement in M010_LINK_INDEXES:
        db.execute(statement)


#: m011 for both engines: a commit's time beside its deployment's id, so that the lead time
#: of a window's commits is read from the index alone, never from the table's rows (the
#: reports' medians read every commit of the window, twice for a grouped report).
M011_COMMIT_TIMES = (
    "CREATE INDEX deployment_commits_committed_at "
    "ON deployment_commits (deployment_id, committed_at)",
)


def m011_commit_times(db: sqlite3.Connection) -> None:
    """An index covering what lead times read of each commit (``M011_COMMIT_TIMES``)."""
    for statement in M011_COMMIT_TIMES:
        db.execute(statement)


#: m012 for both engines (``{time}``: the engine's 64-bit integer): each shipped commit
#: carries what a median of lead times reads of it and of its deployment, so that the
#: medians are read from indexes alone, one table, never a join:
#: - ``deployment_commits_window``: a window's commits, in time order (a short window's, or
#:   a trend bucket's, are few: read and sorted whole);
#: - ``deployment_commits_service`` and ``deployment_commits_lead``: each service's
#:   commits, and all of them, in order of lead time (a long window's median is counted,
#:   then sought: ``LIMIT 2 OFFSET (n - 1) / 2``, never a sort of millions).
#: m011's index had been read only for lead times, and goes.
M012_COMMIT_LEAD_TIMES = (
    "ALTER TABLE deployment_commits ADD COLUMN service TEXT",
    "ALTER TABLE deployment_commits ADD COLUMN team TEXT",
    "ALTER TABLE deployment_commits ADD COLUMN env TEXT",
    "ALTER TABLE deployment_commits ADD COLUMN finished_at {time}",
    "ALTER TABLE deployment_commits ADD COLUMN lead_time {time}",
    "DROP INDEX deployment_commits_committed_at",
)
M012_INDEXES = (
    "CREATE INDEX deployment_commits_window "
    "ON deployment_commits (finished_at, service, team, env, lead_time)",
    "CREATE INDEX deployment_commits_service "
    "ON deployment_commits (service, lead_time, finished_at, team, env)",
    "CREATE INDEX deployment_commits_lead "
    "ON deployment_commits (lead_time, finished_at, service, team, env)",
)


def m012_commit_lead_times(db: sqlite3.Connection) -> None:
    """Each shipped commit's lead time, with its deployment's service, team, env and finish
    beside it (``M012_COMMIT_LEAD_TIMES``), filled for the commits stored so far (kept so by
    every write since: ``SQLStore._write_events``)."""
    for statement in M012_COMMIT_LEAD_TIMES:
        db.execute(statement.format(time="INTEGER"))
    db.execute(
        "UPDATE deployment_commits SET (service, team, env, finished_at) = "
        "(SELECT d.service, d.team, d.env, d.finished_at FROM deployments d "
        "WHERE d.id = deployment_commits.deployment_id)"
    )
    db.execute(
        "UPDATE deployment_commits SET lead_time = "
        "CASE WHEN finished_at > committed_at THEN finished_at - committed_at ELSE 0 END"
    )
    for statement in M012_INDEXES:
        db.execute(statement)


#: m013 on PostgreSQL: the index of each (service, env) history by finish also holds each
#: deployment's id and team, so that an incident's latest deployment (the greatest finish,
#: then id) is read whole from the index by one seek (``store.links``, relinking).
M013_LINK_LATEST = (
    "DROP INDEX deployments_service_env_finished_at",
    "CREATE INDEX deployments_service_env_latest "
    "ON deployments (service, env, finished_at, id) INCLUDE (team)",
)


def m013_link_latest(db: sqlite3.Connection) -> None:
    """Nothing on SQLite (``M013_LINK_LATEST`` is PostgreSQL's): with no ``LATERAL`` join
    to read a seek's whole row, SQLite finds the latest finish, then the deployments that
    finished then (``store.links``), and a wider index would only make its writes slower."""


#: m014 for both engines (``{id}``: the engine's text for ids; ``{time}``: its 64-bit
#: integer): each incident's link to a deployment, kept as events are written
#: (``store.links``), with the deployment's fields a report reads.
M014_INCIDENT_LINKS = (
    "CREATE TABLE incident_links ("
    "incident_id {id} PRIMARY KEY REFERENCES incidents (id) ON DELETE CASCADE, "
    "deployment_id {id} NOT NULL, service {id} NOT NULL, team {id}, env {id}, "
    "finished_at {time} NOT NULL)",
    "CREATE INDEX incident_links_deployment ON incident_links (deployment_id)",
)


def m014_incident_links(db: sqlite3.Connection) -> None:
    """Each incident's link to the deployment it followed (``M014_INCIDENT_LINKS``), found
    for the incidents stored so far (kept so by every write since: ``store.links``)."""
    from dora.store import links

    for statement in M014_INCIDENT_LINKS:
        db.execute(statement.format(id="TEXT", time="INTEGER"))
    links.relink_all(db, lateral=False)


#: The outbox's kinds from m015 on: deletions (``dora deployment delete``, ``dora incident
#: delete``) are sent as well, under the deleted event's id.
M015_OUTBOX_KINDS = (
    "kind IN ('deployment', 'incident', 'mark', 'deployment_deletion', 'incident_deletion')"
)


def m015_outbox_deletions(db: sqlite3.Connection) -> None:
    """Deletions go through the outbox too (``M015_OUTBOX_KINDS``)."""
    _outbox_kinds(db, M015_OUTBOX_KINDS)


#: m016 for both engines: a mark made by service, env and version says so, and is sent so.
M016_MARK_BY_VERSION = (
    "ALTER TABLE deployment_marks ADD COLUMN by_version INTEGER NOT NULL DEFAULT 0",
)


def m016_mark_by_version(db: sqlite3.Connection) -> None:
    """Marks made by version (``M016_MARK_BY_VERSION``); those before were made by id."""
    for statement in M016_MARK_BY_VERSION:
        db.execute(statement)


MIGRATIONS: tuple[Migration, ...] = (
    ("m001_initial", m001_initial),
    ("m002_outbox", m002_outbox),
    ("m003_deployment_commits", m003_deployment_commits),
    ("m004_strip_repository_credentials", m004_strip_repository_credentials),
    ("m005_commit_messages", m005_commit_messages),
    ("m006_change_failures", m006_change_failures),
    ("m007_incident_deployment", m007_incident_deployment),
    ("m008_outbox_marks", m008_outbox_marks),
    ("m009_detection_settings", m009_detection_settings),
    ("m010_link_indexes", m010_link_indexes),
    ("m011_commit_times", m011_commit_times),
    ("m012_commit_lead_times", m012_commit_lead_times),
    ("m013_link_latest", m013_link_latest),
    ("m014_incident_links", m014_incident_links),
    ("m015_outbox_deletions", m015_outbox_deletions),
    ("m016_mark_by_version", m016_mark_by_version),
)


def applied(db: sqlite3.Connection) -> set[str]:
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dora_migrations'"
    ).fetchone()
    if not exists:
        return set()
    return {name for (name,) in db.execute("SELECT name FROM dora_migrations")}


def check_known(done: set[str], names: Sequence[str]) -> None:
    """Refuse a store with migrations this dora does not know: a newer dora wrote it."""
    if unknown := sorted(done - set(names)):
        raise StoreError(
            f"the store was written by a newer dora (it has migration {unknown[-1]}); "
            "upgrade dora to use it"
        )


def migrate(db: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> list[str]:
    """Apply the migrations ``db`` lacks; return their names. ``db`` must be in autocommit."""
    done = applied(db)
    check_known(done, [name for name, _ in migrations])
    ran = []
    for name, apply in migrations:
        if name in done:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "CREATE TABLE IF NOT EXISTS dora_migrations "
                "(name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)"
            )
            if db.execute("SELECT 1 FROM dora_migrations WHERE name = ?", (name,)).fetchone():
                db.execute("COMMIT")  # another process applied it while we waited
                continue
            apply(db)
            db.execute(
                "INSERT INTO dora_migrations (name, applied_at) VALUES (?, ?)",
                (name, time.time_ns()),
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        ran.append(name)
    return ran
