"""The embedded default store: one SQLite file, in WAL mode, shared safely by many processes."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dora.errors import NotFound, StoreError
from dora.store import migrations
from dora.store.sql import Connection, SQLStore

log = logging.getLogger(__name__)

#: How long a writer waits for another to finish, in seconds. Writes take milliseconds.
BUSY_TIMEOUT = 30.0

_SQLITE_HEADER = b"SQLite format 3\x00"


class SQLiteStore(SQLStore):
    SERVICES = (
        "(SELECT json_group_array(service) FROM "
        "(SELECT service FROM incident_services s WHERE s.incident_id = i.id ORDER BY position))"
    )
    ORDERED_JOIN = "CROSS JOIN"

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path).expanduser()
        self.location = str(self.path)
        if not create and not self.path.exists():
            raise NotFound(f"no store at {self.path}: nothing has been recorded there yet")
        self._db = _open(self.path)

    def close(self) -> None:
        self._db.close()

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
            # plain tuples, as PostgreSQL's rows are: a report reads millions, and making
            # each a sqlite3.Row cost more than the query
            cursor = self._db.cursor()
            cursor.row_factory = None
            cursor.execute(sql, params)
            while batch := cursor.fetchmany(1000):
                yield from batch
        except sqlite3.Error as exc:
            raise _store_error(self.path, "cannot read", exc) from exc

    def _read(self, sql: str, params: Sequence[Any]) -> list[Mapping[str, Any]]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _store_error(self.path, "cannot read", exc) from exc

    def _write(self, *, bulk: bool = False) -> _Transaction:
        # every write transaction keeps the others out (BEGIN IMMEDIATE)
        return _Transaction(self._db, self.path)

    def _id_prefix(self, prefix: str, column: str = "i.id") -> tuple[str, Any]:
        # GLOB is case-sensitive and can use the primary key; ids hold no GLOB metacharacters
        return f"{column} GLOB ?", f"{prefix}*"

    @contextlib.contextmanager
    def _bulk(self) -> Iterator[None]:
        # a larger page cache while the indexes take many rows at random places (bounded)
        self._db.execute(f"PRAGMA cache_size = -{_BULK_CACHE_KIB}")
        try:
            yield
        finally:
            self._db.execute("PRAGMA cache_size = -2000")  # SQLite's default

    def _credit_once(self, db: Connection, shas: set[str]) -> None:
        if not shas:
            return
        # One statement for every commit at once, from the few rows of each SHA (its index;
        # CROSS JOIN keeps SQLite to that order), never from the service's whole history.
        db.execute("CREATE TEMP TABLE IF NOT EXISTS credited (sha TEXT PRIMARY KEY)")
        db.execute("DELETE FROM temp.credited")
        db.executemany("INSERT INTO temp.credited (sha) VALUES (?)", [(sha,) for sha in shas])
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
