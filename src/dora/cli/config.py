"""``dora config``: the effective settings, and where each one came from."""

from __future__ import annotations

import sys

from dora.cli import _common as opt
from dora.config import Settings


def config(db: opt.Db = None, verbose: opt.Verbose = False) -> None:
    """Show the effective settings and where each came from.

    Each setting comes from the first of: a flag, an environment variable, the config
    file (TOML; DORA_CONFIG sets its path), the default. Passwords in URLs are masked.

    Example config file:

        db = "/var/lib/dora/dora.db"
        service = "api"
        env = "prod"
        team = "payments"

    Examples:

        dora config

        DORA_CONFIG=./dora.toml dora config
    """
    settings = Settings({"db": db})
    found = "" if settings.path.is_file() else " (not found)"
    rows = [("config file", f"{settings.path}{found}", settings.path_source)]
    rows += [(s.key.name, s.shown() or "-", s.source) for s in settings.all()]
    name_width = max(len(row[0]) for row in rows)
    value_width = max(len(row[1]) for row in rows)
    for name, value, source in rows:
        sys.stdout.write(f"{name:<{name_width}}  {value:<{value_width}}  {source}\n")
