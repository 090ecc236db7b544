"""``dora config``: the effective settings, and where each one came from."""

from __future__ import annotations

import sys

from dora.cli import _common as opt
from dora.config import Settings


def config(db: opt.Db = None, verbose: opt.Verbose = False) -> None:
    """Show the effective settings and where each came from.

    Each setting comes from the first of: a flag, an environment variable, the config
    file (TOML; DORA_CONFIG sets its path), the default. Passwords in URLs are masked.

    Examples:

        dora config
        DORA_CONFIG=./dora.toml dora config

    A config file:

        db = "/var/lib/dora/dora.db"
        service = "api"
        env = "prod"
        team = "payments"
    """
    from dora import render

    settings = Settings({"db": db})
    found = "" if settings.path.is_file() else " (not found)"
    render.settings_table(
        settings.all(), f"{settings.path}{found}", settings.path_source, sys.stdout
    )
