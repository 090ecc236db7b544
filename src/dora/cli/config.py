"""``dora config``: the effective settings, where each one came from, and what is wrong."""

from __future__ import annotations

import shutil
import sys

from dora.cli import _common as opt
from dora.config import Settings
from dora.errors import DoraError


def config(db: opt.Db = None, verbose: opt.Verbose = False) -> None:
    """Show the effective settings, where each came from, and any that is invalid.

    Each setting comes from the first of: a flag, an environment variable, the config
    file (TOML; DORA_CONFIG sets its path), the default. Each is checked as the commands
    check it: an invalid one is shown with what is wrong with it (error: ...), and the
    command exits 1. The API key is never shown; passwords in URLs are masked. A value too
    long for its column goes on the lines under it.

    Examples:

        dora config
        DORA_CONFIG=./dora.toml dora config

    A config file:

        db = "/var/lib/dora/dora.db"
        service = "api"
        env = "prod"
        team = "payments"
        retry_budget = 60
    """
    from dora import checks, render

    reviews = checks.review(Settings({"db": db}, lenient=True))
    render.settings_table(reviews, sys.stdout, shutil.get_terminal_size().columns)
    if invalid := [review.name for review in reviews if review.problems]:
        raise DoraError(
            f"{len(invalid)} invalid setting{'s' * (len(invalid) > 1)}: {', '.join(invalid)}"
        )
