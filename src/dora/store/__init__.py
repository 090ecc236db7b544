"""Where events are kept. ``open_store`` picks the engine from the target's form."""

from __future__ import annotations

from pathlib import Path

from dora.errors import UsageError
from dora.store.base import Store

__all__ = ["Store", "open_store"]


def open_store(target: str | Path, *, create: bool = True) -> Store:
    """Open the store at ``target``, an SQLite file path.

    With ``create`` (for commands that record) a missing store is made; without it (for
    commands that only read or change what is there) a missing store raises ``NotFound``.
    """
    if "://" in str(target):
        scheme = str(target).partition("://")[0]
        raise UsageError(
            f"{scheme}:// stores are not supported yet; the store must be an SQLite file path"
        )
    from dora.store.sqlite import SQLiteStore

    return SQLiteStore(target, create=create)
