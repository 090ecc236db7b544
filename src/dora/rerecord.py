"""The command that records a stored event again: how an event is corrected (recording is
an upsert by id), as ``dora deployment show`` and ``dora incident show`` print it."""

from __future__ import annotations

import shlex

from dora import timeparse
from dora.events import Deployment, Event, Incident


def command(event: Event) -> str:
    """The command that records ``event`` again as it is stored (same id: an upsert), to be
    changed and run to correct it: every field given as a flag, the times exact, and
    ``--skip-git`` so that git adds nothing and a deployment keeps its stored commits."""
    return " ".join(_parts(event))


def lines(event: Event, width: int | None = 80) -> list[str]:
    """``command`` in lines of at most ``width`` columns (a flag is never parted from its
    value; one longer than the width has a line of its own), each but the last ending in
    `` \\`` so that the whole pastes into a shell as one command."""
    if width is None:
        return [command(event)]
    found: list[str] = []
    for part in _parts(event):
        if found and len(found[-1]) + 1 + len(part) + 2 <= width:
            found[-1] += " " + part
        else:
            found.append(part if not found else "  " + part)
    return [line + " \\" for line in found[:-1]] + found[-1:]


def _parts(event: Event) -> list[str]:
    """The command's words, each flag with its value, quoted for a POSIX shell."""
    parts = ["dora deployment" if isinstance(event, Deployment) else "dora incident open"]
    given: list[tuple[str, str | None]] = [("--id", event.id)]
    if isinstance(event, Deployment):
        given.append(("--service", event.service))
    elif isinstance(event, Incident):
        given += [("--service", service) for service in event.services]
    given += [
        ("--team", event.team),
        ("--env", event.env),
        ("--version", event.version),
        ("--name", getattr(event, "name", None)),
        ("--severity", getattr(event, "severity", None)),
        ("--deployment", getattr(event, "deployment_id", None)),
        ("--started-at", timeparse.format_iso(event.started_at)),
        ("--finished-at", timeparse.format_iso(event.finished_at) if event.finished_at else None),
        ("--git-repository-url", event.git.repository_url if event.git else None),
        ("--git-commit-sha", event.git.commit_sha if event.git else None),
    ]
    given += [("--custom-tags", tag) for tag in event.custom_tags]
    parts += [f"{flag} {shlex.quote(value)}" for flag, value in given if value is not None]
    return [*parts, "--skip-git"]
