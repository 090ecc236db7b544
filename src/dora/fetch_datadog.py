"""``dora fetch datadog``: the deployments and failures Datadog has, as dora records them.

Datadog's list endpoints (``POST /api/v2/dora/deployments`` and ``/failures``) answer at
most ``limit`` events (1,000 at most) of a window, with no cursor to the rest. A window
whose answer is full is split in two and each half asked for again, down to a
millisecond; so every event is read whatever the endpoint's order or the timestamp its
window is on, and events that share a timestamp are not lost (1,000 or more in the last
window, a millisecond or two as Datadog's window ends are read, are an error, never a
silent cut). An event on the boundary of two windows
comes twice and is kept once, by its id.

Each event becomes a record in ``dora import``'s form under Datadog's own id, so that a
later ``dora push``, delete or mark addresses the same event:

* deployment: ``service``, ``env``, ``team``, ``version``, ``started_at``,
  ``finished_at``, ``custom_tags``; ``git.repository_id`` (``github.com/org/repo``, no
  scheme) becomes ``git.repository_url`` ``https://github.com/org/repo``;
* failure (an incident): ``services``, ``name``, ``severity``, ``env``, ``team``,
  ``version``, ``started_at``, ``finished_at`` (none: still open), ``git``,
  ``custom_tags``.

Fields the read model has no place for (a deployment's commits, an incident's cause, a
mark) cannot come back: what was marked on Datadog is not read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dora import timeparse
from dora.errors import DoraError

if TYPE_CHECKING:
    from dora.backends.datadog import DatadogBackend

#: Events asked for at a time: the most Datadog answers.
PAGE = 1000
#: The kinds read, in order, and what Datadog calls them.
KINDS = {"deployment": "deployment", "incident": "failure"}

_MS_NS = 1_000_000
#: A value that needs no quotes in Datadog's search syntax.
_BARE = re.compile(r"[A-Za-z0-9_.:/@-]+")


@dataclass
class Fetched:
    """What a fetch read: records by kind (``dora import``'s form, in the order read), and
    how many requests it took."""

    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: int = 0


def search_query(
    services: Sequence[str], envs: Sequence[str], teams: Sequence[str], query: str | None
) -> str | None:
    """The search query of the filters, in Datadog's syntax: ``service:(api OR web)
    env:prod``, and ``query`` as given, all of them together."""
    parts = []
    for name, values in (("service", services), ("env", envs), ("team", teams)):
        if values:
            quoted = [v if _BARE.fullmatch(v) else _quoted(v) for v in values]
            parts.append(
                f"{name}:{quoted[0]}" if len(quoted) == 1 else f"{name}:({' OR '.join(quoted)})"
            )
    if query and query.strip():
        parts.append(f"({query.strip()})" if parts else query.strip())
    return " ".join(parts) or None


def fetch(
    backend: DatadogBackend,
    since: datetime,
    until: datetime,
    *,
    query: str | None = None,
    page: int = PAGE,
    progress: Callable[[int], None] | None = None,
) -> Fetched:
    """Every deployment and failure Datadog lists from ``since`` to ``until`` that match
    ``query``, as records. ``progress(n)`` hears how many events are read so far."""
    fetched = Fetched()
    total = 0
    # whole milliseconds, as Datadog's times are: each split is strictly inside its window
    first = timeparse.to_ns(since) // _MS_NS
    last = -(-timeparse.to_ns(until) // _MS_NS)
    for kind in KINDS:
        found: dict[str, dict[str, Any]] = {}
        windows = [(first, last)]
        while windows:
            start, end = windows.pop()
            items = backend.list_events(kind, _iso(start), _iso(end), query=query, limit=page)
            fetched.requests += 1
            if len(items) >= page:
                if end - start <= 1:
                    raise DoraError(
                        f"Datadog has {page:,} or more {KINDS[kind]}s from {_iso(start)} "
                        f"to {_iso(end)}, more than one answer holds: some would be missed; "
                        "narrow them with --query"
                    )
                middle = (start + end) // 2
                windows += [(middle, end), (start, middle)]  # the earlier half first
                continue
            for item in items:
                record = record_of(kind, item)
                key = record["id"] if isinstance(record["id"], str) else f"#{len(found)}"
                total += key not in found
                found[key] = record  # an event updated between two answers: the later
            if progress is not None:
                progress(total)
        fetched.records[kind] = list(found.values())
    return fetched


def record_of(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    """One event of Datadog's read model as a ``dora import`` record (fields Datadog left
    out are left out; what dora's checks make of the rest is theirs to say)."""
    attributes = item.get("attributes")
    attributes = attributes if isinstance(attributes, dict) else {}
    names: tuple[str, ...] = ("env", "team", "version", "started_at", "finished_at", "custom_tags")
    if kind == "deployment":
        names = ("service", *names)
    else:
        names = ("services", "name", "severity", *names)
    record: dict[str, Any] = {"type": kind, "id": item.get("id")}
    record.update((name, attributes[name]) for name in names if attributes.get(name) is not None)
    git = attributes.get("git")
    if isinstance(git, dict):
        url = git.get("repository_url")
        if url is None and isinstance(repository := git.get("repository_id"), str):
            url = repository if "://" in repository else f"https://{repository}"
        shown = {"repository_url": url, "commit_sha": git.get("commit_sha")}
        if shown := {k: v for k, v in shown.items() if v is not None}:
            record["git"] = shown
    return record


def _quoted(value: str) -> str:
    """A value in double quotes, as Datadog's search syntax reads it."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _iso(ms: int) -> str:
    """``2026-11-24T09:30:00.000Z`` of a time in milliseconds since the epoch."""
    moment = timeparse.from_ns(ms * _MS_NS)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
