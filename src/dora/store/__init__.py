"""Where events are kept. ``open_store`` picks the engine from the target's form."""

from __future__ import annotations

from pathlib import Path

from dora.errors import UsageError
from dora.store.base import Store

__all__ = ["Store", "open_store"]


def open_store(target: str | Path) -> Store:
    """Open the store at ``target``, an SQLite file path, creating it on first use."""
    if "://" in str(target):
        scheme = str(target).partition("://")[0]
        raise UsageError(
            f"--db: {scheme}:// stores are not supported yet; give the path of an SQLite file"
        )
    from dora.store.sqlite import SQLiteStore

    return SQLiteStore(target)
