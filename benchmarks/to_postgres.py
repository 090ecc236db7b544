"""Copy a store made by ``make_store.py`` into PostgreSQL, to measure dora on the same events.

    python benchmarks/to_postgres.py store.db 'postgresql://postgres@127.0.0.1:5432/bench'
    python benchmarks/to_postgres.py store.db \\
        'postgresql://postgres@127.0.0.1:5432/bench?options=-csearch_path%3Dbig'

The store goes into the first schema of the connection's ``search_path`` (``public`` unless
the URL's ``options`` say otherwise), which must not hold one yet. ``dora.store.open_store``
makes dora's schema there by its own migrations; then every table's rows are copied from the
SQLite file with ``COPY ... FROM STDIN`` (referenced tables first), after a check that both
engines have the same tables with the same columns. Each table is then ``VACUUM ANALYZE``d:
what autovacuum does to a real store soon after its rows arrive, done at once so that it
does not start in the middle of a measurement.

``benchmarks/metrics.py --postgres URL`` does this for itself, in a database it makes for the
run (``Scratch``) and drops at the end.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors, sql

#: The server settings that most change how a report runs, shown beside the figures.
SETTINGS = (
    "shared_buffers",
    "work_mem",
    "effective_cache_size",
    "max_parallel_workers_per_gather",
    "jit",
)


def store_url(url: str, schema: str, database: str | None = None) -> str:
    """``url`` with ``schema`` first in its ``search_path`` (and ``database`` for its own,
    if given); its other parts kept."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = [value for key, value in query if key == "options"]
    query = [(key, value) for key, value in query if key != "options"]
    query.append(("options", " ".join([*options, f"-csearch_path={schema}"])))
    path = f"/{quote(database, safe='')}" if database is not None else parts.path
    return urlunsplit(parts._replace(path=path, query=urlencode(query, quote_via=quote)))


def shown(url: str) -> str:
    """``url`` as it may be printed: a password, in the user-info or the query, masked.
    (``dora.redact.scrub`` masks a lone user name too; a command in BENCHMARKS.md keeps it,
    so that it can be run again as shown.)"""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    query = [
        (key, "***" if key == "password" else value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    masked = urlencode(query, quote_via=quote, safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=masked))


def connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True, connect_timeout=10)


class Scratch:
    """A database of its own on the server at ``url`` for a run's stores, each in a schema
    of its own; dropped with all of them on leaving, whatever happened meanwhile.

    Where the role may not create databases, schemas in ``url``'s own database instead
    (named ``dora_bench_<pid>_<name>``), dropped alike.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.database: str | None = None
        self.schemas: list[str] = []
        self._admin: psycopg.Connection[Any] | None = None

    def __enter__(self) -> Scratch:
        self._admin = connect(self.url)
        name = f"dora_bench_{os.getpid()}"
        try:
            # a database of this name can only be left over from a killed run of this script
            self._admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            self._admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            self.database = name
        except errors.InsufficientPrivilege:
            print(
                f"may not create a database at {shown(self.url)}: using schemas in its own",
                file=sys.stderr,
            )
        return self

    def store(self, name: str) -> str:
        """The URL of a new, empty schema called ``name`` (in this run's database)."""
        schema = name if self.database else f"dora_bench_{os.getpid()}_{name}"
        target = store_url(self.url, schema, self.database)
        with connect(target) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        self.schemas.append(schema)
        return target

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._admin is None:
            return
        with self._admin:
            try:
                if self.database:
                    self._admin.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            sql.Identifier(self.database)
                        )
                    )
                for schema in [] if self.database else self.schemas:
                    self._admin.execute(
                        sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                    )
            except psycopg.Error as error:
                left = self.database or ", ".join(self.schemas)
                print(f"could not drop {left} at {shown(self.url)}: {error}", file=sys.stderr)


def describe(url: str) -> str:
    """The server's version and the settings of ``SETTINGS``, in one line."""
    with connect(url) as conn:
        row = conn.execute(
            "SELECT "
            + ", ".join(
                ["current_setting('server_version')"]
                + [f"current_setting('{name}')" for name in SETTINGS]
            )
        ).fetchone()
    assert row is not None
    version, *values = row
    settings = ", ".join(f"{n} {v}" for n, v in zip(SETTINGS, values, strict=True))
    return f"PostgreSQL {version} ({settings})"


def size_mib(url: str) -> float:
    """What the store's tables take on the server, with their indexes, in MiB."""
    with connect(url) as conn:
        row = conn.execute(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
        ).fetchone()
    assert row is not None
    return float(row[0]) / 2**20


def _tables(source: sqlite3.Connection) -> list[str]:
    """The store's tables but ``dora_migrations`` (each engine keeps its own), each after
    the tables it references."""
    names = [
        name
        for (name,) in source.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite%' AND name != 'dora_migrations' ORDER BY name"
        )
    ]
    needs = {
        name: {row[2] for row in source.execute(f"PRAGMA foreign_key_list({name})")} - {name}
        for name in names
    }
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and needs[n] <= set(ordered)]
        if not ready:
            sys.exit(f"the references between {', '.join(names)} go round in a circle")
        ordered.extend(ready)
    return ordered


def _columns(source: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in source.execute(f"PRAGMA table_info({table})")]


def copy_store(path: Path, url: str) -> dict[str, int]:
    """Copy the SQLite store at ``path`` into a new store at ``url``; the rows per table."""
    from dora.store import open_store

    with connect(url) as conn:
        found = conn.execute(
            "SELECT current_schema(), EXISTS (SELECT 1 FROM pg_tables "
            "WHERE schemaname = current_schema() AND tablename = 'dora_migrations')"
        ).fetchone()
    if found is None or found[0] is None:
        sys.exit(f"{shown(url)} names no schema that exists: make it first")
    if found[1]:
        sys.exit(f"{shown(url)} holds a store already (in schema {found[0]})")
    open_store(url).close()  # dora's own schema, every migration applied
    counts: dict[str, int] = {}
    with closing(sqlite3.connect(path)) as source, connect(url) as target:
        tables = _tables(source)
        theirs = {
            (table, column)
            for table, column in target.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name != 'dora_migrations'"
            )
        }
        ours = {(table, column) for table in tables for column in _columns(source, table)}
        if ours != theirs:
            sys.exit(
                f"the stores differ: only in {path}: {sorted(ours - theirs)}; "
                f"only on PostgreSQL: {sorted(theirs - ours)}"
            )
        # each COPY commits synchronously (one flush a table): VACUUM marks a page all
        # visible only once its rows' commit is flushed, so after asynchronous commits it
        # left most of deployment_commits unmarked, and every index-only read of it then
        # went to the table as well, which a real store (vacuumed later) does not
        for table in tables:
            names = _columns(source, table)
            copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names))
            )
            rows = source.execute(f"SELECT {', '.join(names)} FROM {table}")
            with target.cursor() as cursor, cursor.copy(copy_sql) as copy:
                counts[table] = _copy_rows(copy, rows)
    vacuum(url)
    return counts


def vacuum(url: str) -> None:
    """``VACUUM (ANALYZE)`` every table of the store at ``url``: its statistics made, and
    its visibility map set, as autovacuum would soon do to a real store."""
    with connect(url) as conn:
        tables = [
            table
            for (table,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "ORDER BY tablename"
            )
        ]
        for table in tables:
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))


def _copy_rows(copy: psycopg.Copy, rows: sqlite3.Cursor) -> int:
    count = 0
    while batch := rows.fetchmany(10_000):
        for row in batch:
            copy.write_row(row)
        count += len(batch)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, metavar="PATH", help="a store made by make_store.py")
    parser.add_argument("url", metavar="URL", help="postgresql://...: where to copy it")
    args = parser.parse_args()
    from dora.store import is_postgres

    if not is_postgres(args.url):
        parser.error("URL must be a postgresql:// (or postgres://) URL")
    if not args.path.exists():
        parser.error(f"{args.path} does not exist")
    began = time.perf_counter()
    counts = copy_store(args.path, args.url)
    rows = ", ".join(f"{count:,} {table}" for table, count in counts.items())
    took = time.perf_counter() - began
    print(
        f"{shown(args.url)}: {rows}; {size_mib(args.url):,.0f} MiB in {took:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
