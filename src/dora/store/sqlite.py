"""The embedded default store: one SQLite file, in WAL mode, shared safely by many processes."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dora import timeparse
from dora.errors import NotFound, StoreError
from dora.events import Deployment, Event, Incident
from dora.store import migrations
from dora.store.base import (
    Pending,
    Saved,
    Store,
    deployment_from_row,
    event_row,
    incident_from_row,
)

if TYPE_CHECKING:
    from dora.gitmeta import Commit

log = logging.getLogger(__name__)

#: How long a writer waits for another to finish, in seconds. Writes take milliseconds.
BUSY_TIMEOUT = 30.0

_SQLITE_HEADER = b"SQLite format 3\x00"

_INCIDENT_COLUMNS = (
    "i.id, i.name, i.severity, i.env, i.version, i.team, i.started_at, i.finished_at, "
    "i.repository_url, i.commit_sha, i.custom_tags, "
    "(SELECT json_group_array(service) FROM "
    "(SELECT service FROM incident_services s WHERE s.incident_id = i.id ORDER BY position)) "
    "AS services"
)


class SQLiteStore(Store):
    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path).expanduser()
        self.location = str(self.path)
        if not create and not self.path.exists():
            raise NotFound(f"no store at {self.path}: nothing has been recorded there yet")
        self._db = _open(self.path)

    def close(self) -> None:
        self._db.close()

    def save(
        self, event: Event, *, queue: bool = False, commits: Sequence[Commit] | None = None
    ) -> None:
        with self._write() as db:
            _write_events(db, [(event, commits)], time.time_ns())
            _queue(db, event.kind, event.id, insert=queue)

    def save_many(
        self, items: Iterable[tuple[Event, Sequence[Commit] | None]], *, queue: bool = False
    ) -> Saved:
        saved = Saved()
        now = time.time_ns()
        # a larger page cache while the indexes take many rows at random places (bounded)
        self._db.execute(f"PRAGMA cache_size = -{_BULK_CACHE_KIB}")
        try:
            with self._write() as db:
                for chunk in _chunks(items, _CHUNK):
                    _save_chunk(db, chunk, saved, queue=queue, now=now)
        finally:
            self._db.execute("PRAGMA cache_size = -2000")  # SQLite's default
        return saved

    def previous_commit(self, deployment: Deployment) -> str | None:
        found = self._read(
            "SELECT commit_sha FROM deployments WHERE service = ? AND env IS ? "
            "AND (finished_at, id) < (?, ?) AND commit_sha IS NOT NULL "
            "ORDER BY finished_at DESC, id DESC LIMIT 1",
            (
                deployment.service,
                deployment.env,
                timeparse.to_ns(deployment.finished_at),
                deployment.id,
            ),
        )
        return str(found[0]["commit_sha"]) if found else None

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        # a WAL reader sees the database as of its transaction's first read
        try:
            self._db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise _store_error(self.path, "cannot read", exc) from exc
        try:
            yield
        finally:
            _rollback(self._db)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Sequence[Any]]:
        try:
            cursor = self._db.execute(sql, params)
            while batch := cursor.fetchmany(1000):
                yield from batch
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the store at {self.path}: {exc}") from exc

    def finish_incident(
        self, incident_id: str, finished_at: datetime, *, queue: bool = False
    ) -> bool:
        with self._write() as db:
            done = db.execute(
                "UPDATE incidents SET finished_at = ? WHERE id = ? AND finished_at IS NULL",
                (timeparse.to_ns(finished_at), incident_id),
            )
            if done.rowcount == 1:
                _queue(db, "incident", incident_id, insert=queue)
            return done.rowcount == 1

    def undelivered(self) -> list[Pending]:
        outbox = self._read(
            "SELECT kind, event_id, state, attempts, last_error FROM outbox "
            "WHERE state != 'delivered' ORDER BY queued_at, kind, event_id",
            (),
        )
        pending = []
        for entry in outbox:
            event = self.get(entry["kind"], entry["event_id"])
            if event is not None:
                pending.append(
                    Pending(event, entry["state"], entry["attempts"], entry["last_error"])
                )
        return pending

    def claim(self, event: Event, seconds: float) -> bool:
        now = time.time_ns()
        with self._write() as db:
            taken = db.execute(
                "UPDATE outbox SET claimed_until = ? WHERE kind = ? AND event_id = ? "
                "AND state != 'delivered' AND (claimed_until IS NULL OR claimed_until < ?)",
                (now + int(seconds * 1e9), event.kind, event.id, now),
            )
            return taken.rowcount == 1

    def release(self, event: Event) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE outbox SET claimed_until = NULL WHERE kind = ? AND event_id = ?",
                (event.kind, event.id),
            )

    def mark_delivered(self, event: Event) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, "
                "last_error = NULL, delivered_at = ?, claimed_until = NULL "
                "WHERE kind = ? AND event_id = ?",
                (time.time_ns(), event.kind, event.id),
            )

    def mark_failed(self, event: Event, error: str) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ?, "
                "claimed_until = NULL WHERE kind = ? AND event_id = ?",
                (error, event.kind, event.id),
            )

    def get(self, kind: str, event_id: str) -> Event | None:
        if kind == "deployment":
            rows = self._read("SELECT * FROM deployments WHERE id = ?", (event_id,))
            return deployment_from_row(rows[0]) if rows else None
        incidents = self._incidents(
            f"SELECT {_INCIDENT_COLUMNS} FROM incidents i WHERE i.id = ?", (event_id,)
        )
        return incidents[0] if incidents else None

    def incidents_by_prefix(self, prefix: str, limit: int) -> list[Incident]:
        # GLOB is case-sensitive and can use the primary key; ids hold no GLOB metacharacters.
        return self._incidents(
            f"SELECT {_INCIDENT_COLUMNS} FROM incidents i WHERE i.id GLOB ? || '*' "
            "ORDER BY i.id != ?, i.id LIMIT ?",
            (prefix, prefix, limit),
        )

    def list_incidents(
        self, *, open_only: bool = False, services: Sequence[str] = (), limit: int | None = None
    ) -> list[Incident]:
        where: list[str] = []
        params: list[Any] = []
        if open_only:
            where.append("i.finished_at IS NULL")
        if services:
            marks = ", ".join("?" * len(services))
            where.append(
                "EXISTS (SELECT 1 FROM incident_services s "
                f"WHERE s.incident_id = i.id AND s.service IN ({marks}))"
            )
            params.extend(services)
        sql = f"SELECT {_INCIDENT_COLUMNS} FROM incidents i"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY i.started_at DESC, i.id DESC"
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        return self._incidents(sql, params)

    def _incidents(self, sql: str, params: Sequence[Any]) -> list[Incident]:
        import json

        return [incident_from_row(r, json.loads(r["services"])) for r in self._read(sql, params)]

    def _read(self, sql: str, params: Sequence[Any]) -> list[Mapping[str, Any]]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the store at {self.path}: {exc}") from exc

    def _write(self) -> _Transaction:
        return _Transaction(self._db, self.path)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: takes the write lock up front, so that a busy
    store makes writers wait their turn (busy timeout) instead of failing mid-transaction."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self.db, self.path = db, path

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _store_error(self.path, "cannot write to", exc) from exc
        return self.db

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            try:
                self.db.execute("COMMIT")
                return
            except sqlite3.Error as error:
                _rollback(self.db)
                raise _store_error(self.path, "cannot write to", error) from error
        _rollback(self.db)
        if isinstance(exc, sqlite3.Error):
            raise _store_error(self.path, "cannot write to", exc) from exc


def _rollback(db: sqlite3.Connection) -> None:
    """Roll back if a transaction is open (SQLite may have ended it itself on an I/O error,
    and a failed ROLLBACK must not hide the error that matters)."""
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


#: The page cache of ``save_many``, in KiB.
_BULK_CACHE_KIB = 32 * 1024
#: Events written at a time by ``save_many``: one query finds which are stored already.
_CHUNK = 500

_Item = tuple[Event, Sequence["Commit"] | None]


def _chunks(items: Iterable[_Item], size: int) -> Iterator[list[_Item]]:
    """Lists of at most ``size`` items, none holding one event twice (a later copy of an
    event starts the next list, so that it is compared with the earlier one as stored)."""
    chunk: list[_Item] = []
    keys: set[tuple[str, str]] = set()
    for item in items:
        key = (item[0].kind, item[0].id)
        if len(chunk) >= size or key in keys:
            yield chunk
            chunk, keys = [], set()
        chunk.append(item)
        keys.add(key)
    if chunk:
        yield chunk


def _save_chunk(
    db: sqlite3.Connection, chunk: list[_Item], saved: Saved, *, queue: bool, now: int
) -> None:
    stored: set[tuple[str, str]] = set()
    for kind, table in (("deployment", "deployments"), ("incident", "incidents")):
        ids = [event.id for event, _ in chunk if event.kind == kind]
        if ids:
            marks = ", ".join("?" * len(ids))
            found = db.execute(f"SELECT id FROM {table} WHERE id IN ({marks})", ids)
            stored.update((kind, event_id) for (event_id,) in found)
    changed: list[_Item] = []
    for event, commits in chunk:
        if (event.kind, event.id) not in stored:
            saved.new += 1
        elif _unchanged(db, event, commits):
            saved.unchanged += 1
            if queue:
                _queue_new(db, event.kind, event.id, now)
            continue
        else:
            saved.updated += 1
        changed.append((event, commits))
    _write_events(db, changed, now)
    for event, _ in changed:
        _queue(db, event.kind, event.id, insert=queue)


def _write_events(db: sqlite3.Connection, items: Sequence[_Item], recorded_at: int) -> None:
    """Insert or replace the events (keeping when each was first recorded) and what goes
    with them: an incident's services, a deployment's commits (None keeps those stored)."""
    for model, table in ((Deployment, "deployments"), (Incident, "incidents")):
        rows = [event_row(event) for event, _ in items if isinstance(event, model)]
        if rows:
            _upsert(db, table, [{**row, "recorded_at": recorded_at} for row in rows])
    incidents = [event for event, _ in items if isinstance(event, Incident)]
    db.executemany(
        "DELETE FROM incident_services WHERE incident_id = ?", [(i.id,) for i in incidents]
    )
    db.executemany(
        "INSERT INTO incident_services (incident_id, service, position) VALUES (?, ?, ?)",
        [(i.id, service, n) for i in incidents for n, service in enumerate(i.services)],
    )
    shipping = [
        (event, commits)
        for event, commits in items
        if isinstance(event, Deployment) and commits is not None
    ]
    db.executemany(
        "DELETE FROM deployment_commits WHERE deployment_id = ?", [(d.id,) for d, _ in shipping]
    )
    db.executemany(
        "INSERT OR IGNORE INTO deployment_commits (deployment_id, sha, committed_at) "
        "VALUES (?, ?, ?)",
        [
            (d.id, c.sha, timeparse.to_ns(c.committed_at))
            for d, shipped in shipping
            for c in shipped
        ],
    )
    _credit_once(db, [(d, [c.sha for c in shipped]) for d, shipped in shipping])


_Stored = tuple[dict[str, Any], list[str], list[tuple[str, int]] | None]


def _stored(db: sqlite3.Connection, event: Event, *, with_commits: bool) -> _Stored | None:
    """The stored form of the event with ``event``'s kind and id, to compare with
    ``_as_stored``; None if there is none."""
    table = "deployments" if isinstance(event, Deployment) else "incidents"
    found = db.execute(f"SELECT * FROM {table} WHERE id = ?", (event.id,)).fetchone()
    if found is None:
        return None
    row = {key: found[key] for key in found.keys() if key != "recorded_at"}  # noqa: SIM118
    services: list[str] = []
    commits = None
    if isinstance(event, Incident):
        services = [
            service
            for (service,) in db.execute(
                "SELECT service FROM incident_services WHERE incident_id = ? ORDER BY position",
                (event.id,),
            )
        ]
    elif with_commits:
        commits = db.execute(
            "SELECT sha, committed_at FROM deployment_commits WHERE deployment_id = ? ORDER BY sha",
            (event.id,),
        ).fetchall()
        commits = [tuple(commit) for commit in commits]
    return row, services, commits


def _unchanged(db: sqlite3.Connection, event: Event, commits: Sequence[Commit] | None) -> bool:
    """Whether ``event`` (and its commits, if given) is stored exactly so: a deployment's
    commits compared as they would be kept, without those an earlier deployment of its
    service and env was credited with."""
    stored = _stored(db, event, with_commits=commits is not None)
    given = _as_stored(event, commits)
    if stored is None or stored[:2] != given[:2] or stored == given:
        return stored == given
    shipped = given[2] or []
    assert isinstance(event, Deployment)  # noqa: S101 - only deployments have commits
    earlier: set[str] = set()
    for start in range(0, len(shipped), 500):
        part = [sha for sha, _ in shipped[start : start + 500]]
        earlier.update(
            sha
            for (sha,) in db.execute(
                "SELECT c.sha FROM deployment_commits c "
                "CROSS JOIN deployments d ON d.id = c.deployment_id "
                f"WHERE c.sha IN ({', '.join('?' * len(part))}) "
                "AND d.service = ? AND d.env IS ? AND (d.finished_at, d.id) < (?, ?)",
                (*part, event.service, event.env, timeparse.to_ns(event.finished_at), event.id),
            )
        )
    return stored[2] == [commit for commit in shipped if commit[0] not in earlier]


def _as_stored(event: Event, commits: Sequence[Commit] | None) -> _Stored:
    shipped = None
    if commits is not None and isinstance(event, Deployment):
        shipped = sorted({(c.sha, timeparse.to_ns(c.committed_at)) for c in commits})
    services = event.services if isinstance(event, Incident) else []
    return event_row(event), list(services), shipped


def _queue(db: sqlite3.Connection, kind: str, event_id: str, *, insert: bool) -> None:
    """Put a changed event (back) in the outbox as pending, keeping its count of attempts.

    Without ``insert`` only an event already in the outbox goes back: one that was sent to a
    backend once is sent again when it changes, whatever backend the change was made with.
    """
    now = time.time_ns()
    if insert:
        db.execute(
            "INSERT INTO outbox (kind, event_id, state, queued_at) VALUES (?, ?, 'pending', ?) "
            "ON CONFLICT (kind, event_id) DO UPDATE SET state = 'pending', "
            "queued_at = excluded.queued_at, delivered_at = NULL",
            (kind, event_id, now),
        )
    else:
        db.execute(
            "UPDATE outbox SET state = 'pending', queued_at = ?, delivered_at = NULL "
            "WHERE kind = ? AND event_id = ?",
            (now, kind, event_id),
        )


def _queue_new(db: sqlite3.Connection, kind: str, event_id: str, now: int) -> None:
    """Put an event in the outbox as pending unless it is there already, in any state."""
    db.execute(
        "INSERT INTO outbox (kind, event_id, state, queued_at) VALUES (?, ?, 'pending', ?) "
        "ON CONFLICT (kind, event_id) DO NOTHING",
        (kind, event_id, now),
    )


def _credit_once(db: sqlite3.Connection, shipped: Sequence[tuple[Deployment, list[str]]]) -> None:
    """Credit each commit to the first deployment of the service and env that shipped it,
    as lead time measures the time to reach production once.

    ``shipped`` holds deployments just stored with their commits. Deployments are ordered
    by finish, then id: of the deployments of one service and env that list a commit, only
    the first keeps it. So a roll forward after a rollback ships nothing new, and a backfill
    takes its commits from the deployment recorded before it that shipped them.
    """
    shas = {(sha,) for _, listed in shipped for sha in listed}
    if not shas:
        return
    # One statement for every commit at once, from the few rows of each SHA (its index;
    # CROSS JOIN keeps SQLite to that order), never from the service's whole history.
    db.execute("CREATE TEMP TABLE IF NOT EXISTS credited (sha TEXT PRIMARY KEY)")
    db.execute("DELETE FROM temp.credited")
    db.executemany("INSERT INTO temp.credited (sha) VALUES (?)", shas)
    db.execute(
        "DELETE FROM deployment_commits WHERE rowid IN ("
        "SELECT c.rowid FROM temp.credited t "
        "CROSS JOIN deployment_commits c ON c.sha = t.sha "
        "CROSS JOIN deployments d ON d.id = c.deployment_id "
        "WHERE EXISTS (SELECT 1 FROM deployment_commits e "
        "CROSS JOIN deployments f ON f.id = e.deployment_id "
        "WHERE e.sha = c.sha AND f.service = d.service AND f.env IS d.env "
        "AND (f.finished_at, f.id) < (d.finished_at, d.id)))"
    )
    db.execute("DELETE FROM temp.credited")


def _upsert(db: sqlite3.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert the rows (all with the same columns), or update those already stored, except
    for when they were first recorded."""
    columns = ", ".join(rows[0])
    names = ", ".join(f":{name}" for name in rows[0])
    updates = ", ".join(f"{name} = excluded.{name}" for name in rows[0] if name != "recorded_at")
    db.executemany(
        f"INSERT INTO {table} ({columns}) VALUES ({names}) "
        f"ON CONFLICT (id) DO UPDATE SET {updates}",
        rows,
    )


def _store_error(path: Path, doing: str, exc: BaseException) -> StoreError:
    reason = str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    return StoreError(f"{doing} the store at {path}: {reason}")


def _open(path: Path) -> sqlite3.Connection:
    """Open (creating if need be) a dora store; never touch a file that is not one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise StoreError(
            f"cannot create the store at {path}: part of its path is a file, not a directory"
        ) from None
    except OSError as exc:
        raise _store_error(path, "cannot create", exc) from exc
    if path.is_dir():
        raise StoreError(f"the store at {path} is a directory, not a dora database")
    if path.exists() and not path.is_file():
        raise StoreError(f"the store at {path} is not a regular file; left untouched")
    _check_header(path)
    try:
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
    except sqlite3.Error as exc:
        raise _store_error(path, "cannot open", exc) from exc
    db.row_factory = sqlite3.Row
    try:
        _claim(db, path)
        migrations.migrate(db)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise _store_error(path, "cannot open", exc) from exc
    except BaseException:
        db.close()
        raise
    return db


def _check_header(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _store_error(path, "cannot read", exc) from exc
    if header and header != _SQLITE_HEADER:
        raise StoreError(f"{path} is not a dora database (not an SQLite file); left untouched")


def _claim(db: sqlite3.Connection, path: Path) -> None:
    """Make sure ``db`` is ours or empty before writing to it, then set it up."""
    db.execute("BEGIN")  # one snapshot for both reads, while another process may be creating it
    try:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        user_version = db.execute("PRAGMA user_version").fetchone()[0]
        has_tables = db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None
    finally:
        if db.in_transaction:
            db.execute("COMMIT")
    if app_id != migrations.APPLICATION_ID and (has_tables or app_id or user_version):
        raise StoreError(f"{path} is an SQLite database but not a dora one; left untouched")
    if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        _retry_busy(lambda: db.execute("PRAGMA journal_mode = WAL"))
    db.execute("PRAGMA foreign_keys = ON")
    if app_id == 0:
        log.debug("creating a new store at %s", path)


def _retry_busy(statement: Any) -> None:
    """Run ``statement`` again while another connection holds the lock it needs.

    Switching to WAL needs an exclusive lock and, unlike a write, does not wait on the busy
    handler, so processes that create the same store at the same moment retry here.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
