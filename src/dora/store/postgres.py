"""A shared store on PostgreSQL, for the many CI runners and laptops of one organisation.

``DORA_DB=postgresql://user:password@host:5432/dbname`` (or ``postgres://``; libpq's
``PG*`` environment variables fill in what the URL leaves out). The driver is psycopg 3,
installed with ``pip install 'dora[postgres]'``.

The schema is the SQLite store's, column for column, with text compared byte by byte
(``COLLATE "C"``, as SQLite does) so that both engines order ids alike. Timestamps are
integer nanoseconds (``BIGINT``). Writers run at ``READ COMMITTED``: upserts by id let any
number of them write at once without losing or doubling an event; a transaction-scoped
advisory lock per service and env keeps two writers from crediting one commit twice. An
import takes a store-wide advisory lock that single-event writes share, so that it writes
alone, as on SQLite. Migrations run under an advisory lock, so runners that start at once
apply each once.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import lru_cache, partial
from typing import Any

import psycopg
from psycopg import pq
from psycopg.rows import tuple_row

from dora.errors import NotFound, StoreError, UsageError
from dora.redact import scrub
from dora.store import links, migrations
from dora.store.sql import Connection, Cursor, History, SQLStore

log = logging.getLogger(__name__)

#: Seconds to wait for the server to answer a connection, unless the URL or
#: ``PGCONNECT_TIMEOUT`` says otherwise (libpq's own default is to wait for ever).
CONNECT_TIMEOUT = 10

#: Seconds a statement waits for a lock (another writer, a migration) before it fails,
#: unless the server or the URL sets ``lock_timeout``: as long as SQLite's busy timeout.
LOCK_TIMEOUT = 30

#: Rows fetched at a time by ``rows``.
_FETCH = 2000

_cursor_names = itertools.count()


class PostgresStore(SQLStore):
    ordered_sets = True
    lateral = True
    SERVICES = (
        "(SELECT COALESCE(json_agg(s.service ORDER BY s.position), '[]')::text "
        "FROM incident_services s WHERE s.incident_id = i.id)"
    )

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.location = scrub(url)
        self._conn = self._connect(url)
        self._db = _Adapter(self._conn)
        try:
            _migrate(self._conn, self.location, create=create)
        except psycopg.Error as exc:
            self._conn.close()
            raise self._error("cannot open", exc) from exc
        except BaseException:
            self._conn.close()
            raise

    def _connect(self, url: str) -> psycopg.Connection[Any]:
        given = check_url(url)
        defaults: dict[str, Any] = {}
        if "connect_timeout" not in given and not os.environ.get("PGCONNECT_TIMEOUT"):
            defaults["connect_timeout"] = CONNECT_TIMEOUT
        if "application_name" not in given and not os.environ.get("PGAPPNAME"):
            defaults["application_name"] = "dora"
        try:
            # text is UTF-8 whatever the database's or PGCLIENTENCODING's (psycopg would
            # give bytes for SQL_ASCII)
            conn = psycopg.connect(
                url, autocommit=True, row_factory=_named_row, client_encoding="utf8", **defaults
            )
        except psycopg.Error as exc:
            raise self._error("cannot connect to", exc) from exc
        # writers at READ COMMITTED whatever the server's default: upserts by id and
        # conditional updates (resolve, claim) wait for each other rather than fail
        conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
        try:
            # a writer waits for a lock as long as on SQLite, then fails, never for ever
            conn.execute(
                "SELECT set_config('lock_timeout', %s, false) "
                "WHERE current_setting('lock_timeout') = '0'",
                (f"{LOCK_TIMEOUT}s",),
            )
        except psycopg.Error as exc:
            conn.close()
            raise self._error("cannot open", exc) from exc
        return conn

    def close(self) -> None:
        self._conn.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        try:
            self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            # for the reads of a report, three settings of this transaction alone:
            # - its sorts and joins run a few seconds at most: compiling them took longer
            #   than it saved (0.4 s of a 6 s report on a million deployments);
            # - its index reads are of pages mostly cached: at the default cost of a random
            #   page (4), a 30-day median read every commit of the store, 3 million, where
            #   the window's 120,000 are a look-up each (0.36 s against 0.15 s); over the
            #   whole of a large store, the median then reads the commits in order, on one
            #   CPU, and the report is still a little quicker (BENCHMARKS.md);
            # - it reads every row it asks for: its cursors are planned for all of them, not
            #   for the first tenth (linking 100,000 incidents, as reports did before links
            #   were kept: 1.5 s against 1.3 s)
            self._conn.execute("SET LOCAL jit = off")
            self._conn.execute("SET LOCAL random_page_cost = 1.1")
            self._conn.execute("SET LOCAL cursor_tuple_fraction = 1")
        except psycopg.Error as exc:
            raise self._error("cannot read", exc) from exc
        try:
            yield
        finally:
            if self._conn.info.transaction_status != pq.TransactionStatus.IDLE:
                with contextlib.suppress(psycopg.Error):
                    self._conn.execute("ROLLBACK")

    def rows(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Sequence[Any]]:
        # A server-side cursor, fetched a batch at a time: several can be read side by side
        # (as export does), and none is held in memory whole. It needs a transaction.
        try:
            with contextlib.ExitStack() as stack:
                if self._conn.info.transaction_status == pq.TransactionStatus.IDLE:
                    stack.enter_context(self._conn.transaction())
                cursor = stack.enter_context(
                    self._conn.cursor(name=f"dora_{next(_cursor_names)}", row_factory=tuple_row)
                )
                cursor.itersize = _FETCH
                cursor.execute(_placeholders(sql), params)
                yield from cursor
        except psycopg.Error as exc:
            raise self._error("cannot read", exc) from exc

    def aggregate(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        # a plain query: a cursor is planned for its first rows (cursor_tuple_fraction) and
        # never in parallel, which makes a ranking of millions of commits several times slower
        try:
            with self._conn.cursor(row_factory=tuple_row) as cursor:
                return list(cursor.execute(_placeholders(sql), params))
        except psycopg.Error as exc:
            raise self._error("cannot read", exc) from exc

    def _read(self, sql: str, params: Sequence[Any]) -> list[Mapping[str, Any]]:
        try:
            return self._db.execute(sql, params).fetchall()
        except psycopg.Error as exc:
            raise self._error("cannot read", exc) from exc

    @contextlib.contextmanager
    def _write(self, *, bulk: bool = False) -> Iterator[Connection]:
        if self._conn.info.transaction_status != pq.TransactionStatus.IDLE:
            # inside another transaction (a snapshot, a rows() being read) the write would
            # be a savepoint that the outer transaction's end could undo
            raise RuntimeError("a write inside a read transaction")
        try:
            with self._conn.transaction():
                # Any number of single-event writes at once, but a bulk write (an import)
                # alone: its many rows, locked in the order of its input, would deadlock
                # with another import's, as SQLite's one writer at a time never does.
                lock = "pg_advisory_xact_lock" if bulk else "pg_advisory_xact_lock_shared"
                self._conn.execute(f"SELECT {lock}(%s, 1)", (migrations.APPLICATION_ID,))
                if bulk:
                    # its statements each take milliseconds, however large the planner
                    # guesses tables it has not seen analysed: compiling them (JIT) took
                    # longer, 150 ms a statement
                    self._conn.execute("SET LOCAL jit = off")
                yield self._db
        except psycopg.Error as exc:
            raise self._error("cannot write to", exc) from exc

    @contextlib.contextmanager
    def _bulk(self) -> Iterator[None]:
        # Each statement is planned as it runs: psycopg keeps a statement prepared from its
        # fifth run, and the plan then made for tables still small (read whole: quicker
        # than an index) would be kept while an import makes them large.
        threshold = self._conn.prepare_threshold
        self._conn.prepare_threshold = None
        try:
            yield
        finally:
            self._conn.prepare_threshold = threshold

    def _id_prefix(self, prefix: str, column: str = "i.id") -> tuple[str, Any]:
        # ids are compared bytewise (COLLATE "C"), so a LIKE prefix can use the primary key;
        # of LIKE's metacharacters an id can hold only "_"
        return f"{column} LIKE ?", prefix.replace("_", "\\_") + "%"

    #: Sets of ids are one array parameter here, not an IN list: larger chunks make fewer
    #: round trips and fewer scratch tables (1.3 s of a 100,000-event import).
    CHUNK = 5000

    def _lock_links(self, db: Connection) -> None:
        # a key of its own: taken last, after any history's, by a writer about to relink
        db.execute("SELECT pg_advisory_xact_lock(?, 2)", (migrations.APPLICATION_ID,))

    def _lock_histories(self, db: Connection, histories: Iterable[History]) -> None:
        # in one order (of the lock keys), so that two writers never wait for each other;
        # one statement takes them all, in the order of the array
        keys = sorted({_history_key(service, env) for service, env in histories})
        if keys:
            db.execute("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(?::bigint[]) k", (keys,))

    def _among(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        # one array parameter: the same statement whatever the number of values, where an
        # IN list of them would be parsed and planned anew for each length
        return f"{column} = ANY(?)", [list(values)]

    def _insert_rows(
        self,
        db: Connection,
        table: str,
        columns: Sequence[str],
        rows: list[tuple[Any, ...]],
        conflict: str = "",
    ) -> None:
        # Many rows are copied (COPY): straight into the table, or, to be reconciled with
        # what is stored (``conflict``), into a table of this transaction, then inserted
        # from it in one statement. A row at a time, even pipelined, costs the client and
        # the server several times as much. A few (one event recorded) are inserted as
        # they are, without a table made and dropped for them.
        if len(rows) < _COPY_FROM:
            super()._insert_rows(db, table, columns, rows, conflict)
            return
        names = ", ".join(columns)
        if not conflict:  # nothing to reconcile with what is stored: straight in
            with (
                self._conn.cursor() as cursor,
                cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            return
        scratch = f"dora_incoming_{table}"
        with self._conn.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {scratch} "
                f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            with cursor.copy(f"COPY {scratch} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM {scratch} {conflict}"
            )
            cursor.execute(f"TRUNCATE {scratch}")

    def _credit_once(self, db: Connection, shas: set[str]) -> None:
        if not shas:
            return
        # Every row of these SHAs, ranked in its service and env by its deployment's finish
        # (NULL envs are one partition, as IS NOT DISTINCT FROM has it); all but the first
        # go, by their physical address (ctid). Each step is a look-up by index (OFFSET 0
        # keeps the planner from turning them into joins): as joins, it hashed every commit
        # and deployment of the store for each chunk of an import, whose time then grew
        # with the square of its size.
        db.execute(
            "DELETE FROM deployment_commits WHERE ctid = ANY(ARRAY("
            "SELECT r.ctid FROM (SELECT c.ctid, row_number() "
            "OVER (PARTITION BY c.sha, d.service, d.env ORDER BY d.finished_at, d.id) AS n "
            "FROM unnest(?::text[]) AS t(sha) "
            "CROSS JOIN LATERAL (SELECT e.ctid, e.deployment_id, e.sha FROM deployment_commits e "
            "WHERE e.sha = t.sha OFFSET 0) c "
            "CROSS JOIN LATERAL (SELECT f.service, f.env, f.finished_at, f.id "
            "FROM deployments f WHERE f.id = c.deployment_id OFFSET 0) d) r WHERE r.n > 1))",
            (sorted(shas),),
        )

    def _error(self, doing: str, exc: BaseException) -> StoreError:
        return StoreError(f"{doing} the store at {self.location}: {_reason(exc)}")


def check_url(url: str) -> dict[str, Any]:
    """The connection parameters of ``url``; a usage error if libpq cannot read it."""
    rest = url.partition("://")[2]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in authority.rpartition("@")[0]:
        # libpq would split at the first "@" and name the rest of the password as a host
        raise UsageError(
            "the store URL has '@' in its user name or password: percent-encode it as %40"
        )
    try:
        return psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        # neither the URL nor libpq's reason is repeated: both may hold the password
        raise UsageError(
            "the store is not a valid PostgreSQL URL (libpq's connection URI form, with "
            "libpq's parameters; percent-encode special characters in the user name and "
            "password)"
        ) from None


def _reason(exc: BaseException) -> str:
    """The driver's message in one line, without libpq's prefix and hints."""
    diag = getattr(exc, "diag", None)
    text = diag.message_primary if diag is not None else None
    if not text:
        lines = str(exc).strip().splitlines()
        text = lines[0] if lines else type(exc).__name__
    text = text.removeprefix("connection failed: ")
    return scrub(" ".join(text.split()))


#: Rows written at once from which ``_insert_rows`` copies them (``COPY``) into the table.
_COPY_FROM = 64


def _history_key(service: str, env: str | None) -> int:
    """The advisory lock key (a signed 64-bit integer) of one service and env."""
    digest = hashlib.blake2b(json.dumps([service, env]).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@lru_cache(maxsize=256)
def _placeholders(sql: str) -> str:
    """The shared SQL's ``?`` placeholders as psycopg's ``%s`` (its SQL holds no ``?`` or
    ``%`` of its own: parameters carry every value)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Row(tuple[Any, ...]):
    """A row read by position or by column name, as ``sqlite3.Row`` is."""

    _index: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self._index[key])
        return super().__getitem__(key)

    def keys(self) -> list[str]:
        return list(self._index)


def _named_row(cursor: Any) -> Any:
    index = {column.name: n for n, column in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> _Row:
        row = _Row(values)
        row._index = index
        return row

    return make


class _Adapter:
    """The psycopg connection as the shared SQL expects it: ``?`` placeholders."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Cursor:
        return self.conn.execute(_placeholders(sql), params)

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(_placeholders(sql), params)


# The schema, as named migrations: the SQLite store's, under the same names, in
# PostgreSQL's types. Append-only, like the SQLite ones.

_TEXT = 'TEXT COLLATE "C"'

#: A migration's steps: SQL, or a function of the connection (written once for both engines).
_Step = str | Callable[[Connection], None]

MIGRATIONS: tuple[tuple[str, tuple[_Step, ...]], ...] = (
    (
        "m001_initial",
        (
            f"""CREATE TABLE deployments (
                id {_TEXT} PRIMARY KEY,
                service {_TEXT} NOT NULL,
                env {_TEXT},
                version {_TEXT},
                team {_TEXT},
                started_at BIGINT NOT NULL,
                finished_at BIGINT NOT NULL,
                repository_url {_TEXT},
                commit_sha {_TEXT},
                custom_tags {_TEXT} NOT NULL DEFAULT '[]',
                recorded_at BIGINT NOT NULL
            )""",
            "CREATE INDEX deployments_finished_at ON deployments (finished_at)",
            "CREATE INDEX deployments_service_finished_at ON deployments (service, finished_at)",
            f"""CREATE TABLE incidents (
                id {_TEXT} PRIMARY KEY,
                name {_TEXT},
                severity {_TEXT},
                env {_TEXT},
                version {_TEXT},
                team {_TEXT},
                started_at BIGINT NOT NULL,
                finished_at BIGINT,
                repository_url {_TEXT},
                commit_sha {_TEXT},
                custom_tags {_TEXT} NOT NULL DEFAULT '[]',
                recorded_at BIGINT NOT NULL
            )""",
            "CREATE INDEX incidents_started_at ON incidents (started_at)",
            "CREATE INDEX incidents_finished_at ON incidents (finished_at)",
            f"""CREATE TABLE incident_services (
                incident_id {_TEXT} NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
                service {_TEXT} NOT NULL,
                position INTEGER NOT NULL,
                PRIMARY KEY (incident_id, service)
            )""",
            "CREATE INDEX incident_services_service ON incident_services (service)",
        ),
    ),
    (
        "m002_outbox",
        (
            f"""CREATE TABLE outbox (
                kind {_TEXT} NOT NULL CHECK (kind IN ('deployment', 'incident')),
                event_id {_TEXT} NOT NULL,
                state {_TEXT} NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
                attempts INTEGER NOT NULL DEFAULT 0,
                last_error TEXT,
                queued_at BIGINT NOT NULL,
                delivered_at BIGINT,
                claimed_until BIGINT,
                PRIMARY KEY (kind, event_id)
            )""",
            "CREATE INDEX outbox_undelivered ON outbox (state, queued_at)",
        ),
    ),
    (
        "m003_deployment_commits",
        (
            f"""CREATE TABLE deployment_commits (
                deployment_id {_TEXT} NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
                sha {_TEXT} NOT NULL,
                committed_at BIGINT NOT NULL,
                PRIMARY KEY (deployment_id, sha)
            )""",
            "CREATE INDEX deployment_commits_sha ON deployment_commits (sha)",
            "CREATE INDEX deployments_service_env_finished_at "
            "ON deployments (service, env, finished_at)",
        ),
    ),
    ("m004_strip_repository_credentials", (migrations.m004_strip_repository_credentials,)),
    ("m005_commit_messages", migrations.M005_COMMIT_MESSAGES),
    (
        "m006_change_failures",
        tuple(
            statement.format(id=_TEXT, time="BIGINT")
            for statement in migrations.M006_CHANGE_FAILURES
        ),
    ),
    ("m007_incident_deployment", (f"ALTER TABLE incidents ADD COLUMN deployment_id {_TEXT}",)),
    (
        "m008_outbox_marks",
        (
            "ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check",
            f"ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check "
            f"CHECK ({migrations.M008_OUTBOX_KINDS})",
        ),
    ),
    ("m009_detection_settings", migrations.M009_DETECTION_SETTINGS),
    ("m010_link_indexes", migrations.M010_LINK_INDEXES),
    ("m011_commit_times", migrations.M011_COMMIT_TIMES),
    (
        "m012_commit_lead_times",
        (
            *(step.format(time="BIGINT") for step in migrations.M012_COMMIT_LEAD_TIMES),
            "UPDATE deployment_commits c SET service = d.service, team = d.team, env = d.env, "
            "finished_at = d.finished_at, lead_time = CASE WHEN d.finished_at > c.committed_at "
            "THEN d.finished_at - c.committed_at ELSE 0 END FROM deployments d "
            "WHERE d.id = c.deployment_id",
            *migrations.M012_INDEXES,
        ),
    ),
    ("m013_link_latest", migrations.M013_LINK_LATEST),
    (
        "m014_incident_links",
        (
            *(step.format(id=_TEXT, time="BIGINT") for step in migrations.M014_INCIDENT_LINKS),
            partial(links.relink_all, lateral=True),
        ),
    ),
    (
        "m015_outbox_deletions",
        (
            "ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check",
            f"ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check "
            f"CHECK ({migrations.M015_OUTBOX_KINDS})",
        ),
    ),
    ("m016_mark_by_version", migrations.M016_MARK_BY_VERSION),
)

#: The tables dora makes: found without ``dora_migrations``, they are someone else's.
_TABLES = (
    "deployments", "incidents", "incident_services", "outbox", "deployment_commits",
    "change_failures", "deployment_marks", "detection_settings", "incident_links",
)  # fmt: skip


def _applied(conn: psycopg.Connection[Any]) -> set[str] | None:
    """The migrations applied to the schema ``conn`` writes to; None when it has no store."""
    if _exists(conn, "dora_migrations"):
        return {name for (name,) in conn.execute("SELECT name FROM dora_migrations")}
    return None


def _exists(conn: psycopg.Connection[Any], table: str) -> bool:
    """Whether the schema ``conn`` makes tables in has ``table``. (Read from the catalog as
    of now: ``to_regclass`` may answer from a cache made before the migration lock was
    taken, and miss a table another process has made since.)"""
    found = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables "
        "WHERE schemaname = current_schema() AND tablename = %s)",
        (table,),
    ).fetchone()
    return bool(found and found[0])


def _migrate(conn: psycopg.Connection[Any], location: str, *, create: bool) -> None:
    """Apply the migrations the store lacks, each in its own transaction with its record,
    under an advisory lock so that processes starting at once apply each exactly once."""
    done = _applied(conn)
    if done is None and not create:
        raise NotFound(f"no store at {location}: nothing has been recorded there yet")
    names = [name for name, _ in MIGRATIONS]
    migrations.check_known(done or set(), names)
    if done is not None and set(names) <= done:
        return
    for name, statements in MIGRATIONS:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (migrations.APPLICATION_ID,))
            if _applied(conn) is None:
                _check_empty(conn, location)
                log.debug("creating a new store at %s", location)
                conn.execute(
                    "CREATE TABLE dora_migrations "
                    "(name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)"
                )
            found = conn.execute("SELECT 1 FROM dora_migrations WHERE name = %s", (name,))
            if found.fetchone() is not None:
                continue  # applied already, by this store's past or by another process
            for step in statements:
                if isinstance(step, str):
                    conn.execute(step)
                else:
                    step(_Adapter(conn))
            conn.execute(
                "INSERT INTO dora_migrations (name, applied_at) VALUES (%s, %s)",
                (name, time.time_ns()),
            )


def _check_empty(conn: psycopg.Connection[Any], location: str) -> None:
    """Refuse to make a store where tables of dora's names are someone else's."""
    for table in _TABLES:
        if _exists(conn, table):
            raise StoreError(
                f"{location} has a table '{table}' that dora did not make; left untouched "
                "(give dora a database or schema of its own)"
            )
