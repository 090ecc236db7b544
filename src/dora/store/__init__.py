"""Where events are kept. ``open_store`` picks the engine from the target's form."""

from __future__ import annotations

from pathlib import Path

from dora.store.base import Store

__all__ = ["Store", "open_store"]


def open_store(target: str | Path) -> Store:
    """Open the store at ``target``, an SQLite file path, creating it on first use."""
    from dora.store.sqlite import SQLiteStore

    return SQLiteStore(target)
