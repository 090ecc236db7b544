"""Where events are kept. ``open_store`` picks the engine from the target's form: a
``postgresql://`` (or ``postgres://``) URL is a PostgreSQL store, anything else an SQLite
file path."""

from __future__ import annotations

import re
from pathlib import Path

from dora.errors import DoraError, UsageError
from dora.store.base import Store

__all__ = ["INSTALL_POSTGRES", "Store", "check_target", "is_postgres", "open_store"]

_POSTGRES_SCHEMES = ("postgresql", "postgres")
# "host=db dbname=dora ...": libpq's other connection string form
_LIBPQ_KEYWORDS = re.compile(
    r"\s*(host|hostaddr|port|dbname|user|password|service|sslmode|options)\s*=", re.IGNORECASE
)
#: What makes the PostgreSQL driver available.
INSTALL_POSTGRES = "pip install 'dora[postgres]'"


def is_postgres(target: str | Path) -> bool:
    scheme, sep, _ = str(target).partition("://")
    return bool(sep) and scheme.lower() in _POSTGRES_SCHEMES


def check_target(target: str | Path) -> None:
    """Refuse a store target this installation cannot open, before any work is done for it."""
    if is_postgres(target):
        import importlib.util

        if importlib.util.find_spec("psycopg") is None:
            raise DoraError(f"a PostgreSQL store needs the psycopg driver: {INSTALL_POSTGRES}")
        try:
            from dora.store.postgres import check_url
        except ImportError as exc:  # installed, but unusable (no libpq for its build)
            raise DoraError(
                f"the psycopg driver cannot be loaded ({exc}): {INSTALL_POSTGRES}"
            ) from exc
        check_url(_lower_scheme(str(target)))
        return
    if _LIBPQ_KEYWORDS.match(str(target)):
        # not a file name anyone means; and never to be repeated: it may hold a password
        raise UsageError(
            "the store looks like a libpq 'key=value' string: give a postgresql:// URL"
        )
    if "://" in str(target):
        scheme = str(target).partition("://")[0]
        raise UsageError(
            f"{scheme}:// stores are not supported; "
            "the store is an SQLite file path or a postgresql:// URL"
        )


def _lower_scheme(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme.lower()}://{rest}"


def open_store(target: str | Path, *, create: bool = True) -> Store:
    """Open the store at ``target``: an SQLite file path or a PostgreSQL URL.

    With ``create`` (for commands that record) a missing store is made; without it (for
    commands that only read or change what is there) a missing store raises ``NotFound``.
    """
    check_target(target)
    if is_postgres(target):
        from dora.store.postgres import PostgresStore

        return PostgresStore(_lower_scheme(str(target)), create=create)
    from dora.store.sqlite import SQLiteStore

    return SQLiteStore(target, create=create)
