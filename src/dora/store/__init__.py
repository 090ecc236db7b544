"""Where events are kept. ``open_store`` picks the engine from the target's form."""

from __future__ import annotations

from pathlib import Path

from dora.errors import UsageError
from dora.store.base import Store

__all__ = ["Store", "check_target", "open_store"]


def check_target(target: str | Path) -> None:
    """Refuse a store target this version cannot open, before any work is done for it."""
    if "://" in str(target):
        scheme = str(target).partition("://")[0]
        raise UsageError(
            f"{scheme}:// stores are not supported yet; the store must be an SQLite file path"
        )


def open_store(target: str | Path, *, create: bool = True) -> Store:
    """Open the store at ``target``, an SQLite file path.

    With ``create`` (for commands that record) a missing store is made; without it (for
    commands that only read or change what is there) a missing store raises ``NotFound``.
    """
    check_target(target)
    from dora.store.sqlite import SQLiteStore

    return SQLiteStore(target, create=create)
