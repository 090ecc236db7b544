"""``dora deployment [list | show | mark]``: record a deployment, and look at or correct
recorded ones."""

from __future__ import annotations

from dora.cli.deployment import mark
from dora.cli.deployment import view as _view  # noqa: F401 - registers list and show
from dora.cli.deployment.record import app

app.command("mark")(mark.mark)

__all__ = ["app"]
