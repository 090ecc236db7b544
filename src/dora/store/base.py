"""What every storage engine provides, and the logic that is the same on all of them."""

from __future__ import annotations

import functools
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from dora import timeparse
from dora.errors import DoraError, InvalidEvent, NotFound
from dora.events import Deliverable, Deployment, DeploymentMark, Event, GitInfo, Incident, build

if TYPE_CHECKING:
    from dora.failures import Mark
    from dora.gitmeta import Commit

_ID_PREFIX = re.compile(r"[A-Za-z0-9._:-]+")
#: The shortest prefix that may name an incident, as with git's short SHAs.
MIN_PREFIX = 4

E = TypeVar("E", bound=Event)


def _an(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


class Store(ABC):
    """An append-and-upsert store of events. Use it as a context manager."""

    #: Where the store lives, as the user may be shown it (no password).
    location: str
    #: The hotfix pattern (``failures.HOTFIX``'s form) deployments written through this
    #: store are judged with: set by ``use_hotfix``; None follows the store's own (the
    #: default if it has none).
    hotfix: str | None = None
    #: Whether the engine's SQL has ordered-set aggregates (``percentile_disc``), with which
    #: a median sorts each group on its own, groups and totals in one query.
    ordered_sets: bool = False
    #: Whether the engine's SQL has ``LATERAL`` joins, with which relinking reads each
    #: incident's latest deployment whole in the seek that finds it (``store.links``, from
    #: m013's covering index).
    lateral: bool = False

    @abstractmethod
    def use_hotfix(
        self, pattern: str, *, progress: Callable[[int, int], None] | None = None
    ) -> Redetected | None:
        """Judge deployments with the hotfix pattern ``pattern`` from now on, in this store's
        writes and in what it keeps: if its change failures were found with another pattern,
        or with none recorded (a store from before the pattern was kept), find every
        history's again, in one transaction that writes alone, and keep ``pattern`` as the
        store's. Returns what was done (None: the store had that pattern already).
        ``progress(done, total)`` hears how many deployments are scanned so far."""

    @abstractmethod
    def save(
        self, event: Event, *, queue: bool = False, commits: Sequence[Commit] | None = None
    ) -> None:
        """Insert ``event``, or replace the stored event with the same kind and id; with
        ``queue``, put it in the outbox as pending, in the same transaction.

        ``commits`` (deployments only) replace the commits the deployment shipped; None
        keeps those already stored.
        """

    @abstractmethod
    def save_many(
        self,
        items: Iterable[Stored],
        *,
        queue: bool = False,
        sent_at: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Saved:
        """Save many events in one transaction: all of them, or none if anything fails.

        Each item is an event and its commits in the form the store keeps them (``stored``).
        An event stored already exactly as given is left alone (not rewritten, not queued
        again), so saving the same events twice leaves the store as after once. With
        ``queue``, the new and changed events go to the outbox as pending, and so do
        unchanged ones that were never in it (recorded before a backend was set up); one
        already delivered is not sent again. With ``sent_at`` the events come from the
        backend, read from that time (ns) on (``dora fetch datadog``): each is recorded in
        the outbox as delivered, so that a change or a deletion made here later is sent; one
        with a change or deletion made here waiting in the outbox, or sent since
        ``sent_at``, is left as it is (``Saved.waiting``), so that nothing made here is
        lost; an incident keeps the deployment it names (the backend has no such field).
        ``progress(n)`` hears how many events are written so far, after each chunk of them
        (the transaction commits after the last).
        """

    @abstractmethod
    def delete(self, kind: str, ids: Sequence[str]) -> Deleted:
        """Delete these events of ``kind`` (``deployment`` or ``incident``), and what is
        theirs alone, in one transaction; an id not stored is left out of the answer.

        A deleted deployment's commits go to the next deployment of its service and env (it
        shipped them, since the deleted one never happened), or nowhere if none came after;
        its marks and change failures go, and those of its history are found again; the
        incidents linked to it are linked again, and one that named it as its cause names
        none. Of each event the outbox has sent (or tried to), a deletion is queued for
        Datadog in the same transaction; one still waiting to be sent for the first time
        is simply never sent."""

    @abstractmethod
    def previous_commit(self, deployment: Deployment) -> PreviousCommit | None:
        """The commit of the latest other deployment of the same service and env that
        finished before ``deployment`` did, if one was recorded with a SHA, and the
        repository that deployment was recorded from."""

    @abstractmethod
    def snapshot(self) -> AbstractContextManager[None]:
        """Read everything inside the block from one consistent state of the store, however
        other processes write meanwhile."""

    @abstractmethod
    def rows(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Sequence[Any]]:
        """Run a read-only query and yield its rows as they come, without loading them all.

        The SQL uses ``?`` placeholders and what SQLite and PostgreSQL both understand.
        """

    def aggregate(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        """Run a read-only query whose result is small (a few rows per group) and return
        all its rows: an engine may plan it for the whole result, not for the first rows.

        The SQL is as for ``rows``.
        """
        return list(self.rows(sql, params))

    @abstractmethod
    def incidents_by_prefix(self, prefix: str, limit: int) -> list[Incident]:
        """Up to ``limit`` incidents whose id starts with ``prefix``, exact match first."""

    @abstractmethod
    def deployments_by_prefix(self, prefix: str, limit: int) -> list[Deployment]:
        """Up to ``limit`` deployments whose id starts with ``prefix``, exact match first."""

    @abstractmethod
    def list_incidents(
        self,
        *,
        open_only: bool = False,
        services: Sequence[str] = (),
        envs: Sequence[str] = (),
        teams: Sequence[str] = (),
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Incident]:
        """Incidents, newest start first: with ``open_only`` those still open; with
        ``services``, ``envs`` or ``teams`` those of any of the names given (an incident of
        several services matches any of them); with ``since``, those started at or after
        it."""

    @abstractmethod
    def finish_incident(
        self, incident_id: str, finished_at: datetime, *, queue: bool = False
    ) -> bool:
        """Set the finish of the incident if it is still open, atomically; return whether
        it was (False: another process resolved it first). With ``queue``, put it back in
        the outbox as pending, in the same transaction."""

    @abstractmethod
    def save_mark(self, deployment_id: str, mark: Mark, *, queue: bool = False) -> None:
        """Mark the deployment failed or stable (``deployment_marks``), replacing its mark if
        it has one; with ``queue``, put the mark in the outbox as pending (a pending older
        mark is replaced) in the same transaction, and the deployment too unless it has
        been queued before (Datadog must have it before it can be marked)."""

    @abstractmethod
    def mark_request(self, deployment_id: str, mark: Mark) -> DeploymentMark:
        """What Datadog is told of ``mark`` on the deployment: the remediation type given,
        else a rollback when the remediation deploys what a deployment before the marked
        one deployed (its commit SHA, else its version), else a rollforward."""

    @abstractmethod
    def latest_of_version(self, service: str, env: str, version: str) -> Deployment | None:
        """The deployment of ``service`` in ``env`` with ``version`` that finished last (then
        the greatest id), as Datadog picks the one a mark by version marks; None if none."""

    @abstractmethod
    def undelivered(self) -> list[Pending]:
        """Events in the outbox that are pending or failed, oldest queued first; marks
        after every event (Datadog must have a deployment before it can be marked)."""

    @abstractmethod
    def get(self, kind: str, event_id: str) -> Deliverable | None:
        """The stored event of that kind and id (a mark by its deployment's id), if there
        is one."""

    @abstractmethod
    def claim(self, event: Deliverable, seconds: float) -> bool:
        """Take the right to send ``event`` for ``seconds``, unless another process holds
        it; return whether it was taken. Marking the event delivered or failed releases it."""

    @abstractmethod
    def release(self, event: Deliverable) -> None:
        """Give up the right to send ``event`` taken by ``claim`` (a send was interrupted),
        so that the next ``dora push`` may send it at once."""

    @abstractmethod
    def mark_delivered(self, event: Deliverable) -> None:
        """Record that the backend accepted ``event``."""

    @abstractmethod
    def mark_failed(self, event: Deliverable, error: str) -> None:
        """Record a failed delivery of ``event`` and why; it stays in the outbox."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def find_incident(self, ref: str) -> Incident:
        """The one incident whose id is ``ref`` or starts with it.

        A lower-case prefix of a ULID (whose alphabet is upper case) matches too.
        """
        return self._find("incident", ref, self.incidents_by_prefix)

    def find_deployment(self, ref: str) -> Deployment:
        """The one deployment whose id is ``ref`` or starts with it, as ``find_incident``."""
        return self._find("deployment", ref, self.deployments_by_prefix)

    def _find(self, kind: str, ref: str, by_prefix: Callable[..., Sequence[E]]) -> E:
        if not _ID_PREFIX.fullmatch(ref):
            raise InvalidEvent("id", f"'{ref}' is not {_an(kind)} id")
        matches = by_prefix(ref, limit=6)
        if not matches and ref != ref.upper():
            matches = by_prefix(ref.upper(), limit=6)
        if not matches:
            raise NotFound(f"no {kind} with an id starting with '{ref}' in {self.location}")
        if matches[0].id in (ref, ref.upper()):
            return matches[0]
        if len(ref) < MIN_PREFIX:
            raise InvalidEvent("id", f"give at least {MIN_PREFIX} characters of the id")
        if len(matches) == 1:
            return matches[0]
        shown = ", ".join(m.id for m in matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise InvalidEvent("id", f"'{ref}' matches several {kind}s ({shown}); give more of it")

    def resolve_incident(self, ref: str, finished_at: datetime, *, queue: bool = False) -> Incident:
        """Record the end of an open incident; return it as stored.

        Of several processes resolving one incident at once, exactly one succeeds.
        """
        incident = self.find_incident(ref)
        if incident.is_open:
            data = incident.model_dump(exclude={"finished_at"}, exclude_none=True)
            resolved = build(Incident, {**data, "finished_at": finished_at})
            if self.finish_incident(incident.id, finished_at, queue=queue):
                return resolved
            incident = self.find_incident(incident.id)
        assert incident.finished_at is not None  # noqa: S101 - narrowed by is_open
        raise DoraError(
            f"incident {incident.id} is already resolved "
            f"(at {timeparse.format_iso(incident.finished_at)})"
        )


@dataclass
class Saved:
    """What ``save_many`` did: how many events were new, changed or already stored as
    given."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    #: events fetched from the backend left as stored: a change made here waits to be sent
    waiting: int = 0

    @property
    def total(self) -> int:
        return self.new + self.updated + self.unchanged + self.waiting


@dataclass
class Deleted:
    """What ``delete`` did: the ids deleted, in the order given, and those of them whose
    deletion is queued for Datadog (they had been sent to it)."""

    ids: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Redetected:
    """``use_hotfix`` found the change failures again: the pattern the store had (None for
    none), and how many deployments it scanned."""

    previous: str | None
    deployments: int


class PreviousCommit(NamedTuple):
    """What a deployment's commits are listed from: the commit of the deployment before it,
    and the repository URL recorded with that commit (None if unknown)."""

    sha: str
    repository_url: str | None


@dataclass(frozen=True)
class Pending:
    """An event waiting in the outbox, and how its deliveries have gone so far."""

    event: Deliverable
    state: str  # "pending" (never tried since queued) or "failed"
    attempts: int
    last_error: str | None
    #: a sender (another ``dora push``, say) holds it now: it is that sender's to deliver
    claimed: bool = False


# Rows <-> events. Engines store timestamps as integer UTC nanoseconds, custom tags as a JSON
# array, and an incident's services in a table of their own (for grouping by service).


def event_row(event: Event) -> dict[str, Any]:
    git = event.git
    row: dict[str, Any] = {
        "id": event.id,
        "env": event.env,
        "version": event.version,
        "team": event.team,
        "started_at": timeparse.to_ns(event.started_at),
        "finished_at": timeparse.to_ns(event.finished_at) if event.finished_at else None,
        "repository_url": git.repository_url if git else None,
        "commit_sha": git.commit_sha if git else None,
        "custom_tags": _tags_json(tuple(event.custom_tags)),
    }
    if isinstance(event, Deployment):
        row["service"] = event.service
    elif isinstance(event, Incident):
        row["name"] = event.name
        row["severity"] = event.severity
        row["deployment_id"] = event.deployment_id
    return row


class Stored(NamedTuple):
    """An event in the form the store keeps it, made once from a valid event (``stored``):
    what ``save_many`` compares and writes, and what an import keeps on disk meanwhile.

    ``row`` is ``event_row``'s; ``services`` an incident's, in order; ``commits`` a
    deployment's as (sha, committed_at ns, subject, reverts), the first of each SHA in the
    order given, or None to keep those stored."""

    kind: str
    id: str
    row: dict[str, Any]
    services: list[str]
    commits: list[tuple[str, int, str | None, str | None]] | None


def stored(event: Event, commits: Sequence[Commit] | None = None) -> Stored:
    """``event`` and the commits it shipped (None: keep those stored) as the store keeps
    them."""
    shipped = None
    if commits is not None:
        first: dict[str, tuple[str, int, str | None, str | None]] = {}
        for c in commits:
            first.setdefault(c.sha, (c.sha, timeparse.to_ns(c.committed_at), c.subject, c.reverts))
        shipped = list(first.values())
    services = list(event.services) if isinstance(event, Incident) else []
    return Stored(event.kind, event.id, event_row(event), services, shipped)


@functools.lru_cache(maxsize=1024)
def _tags_json(tags: tuple[str, ...]) -> str:
    """Custom tags as stored, a JSON array: remembered, as most events of a store share
    the same few sets of tags."""
    return json.dumps(list(tags))


def _common_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    git = None
    if row["repository_url"] is not None or row["commit_sha"] is not None:
        git = GitInfo.model_construct(
            repository_url=row["repository_url"], commit_sha=row["commit_sha"]
        )
    finished = row["finished_at"]
    return {
        "id": row["id"],
        "env": row["env"],
        "version": row["version"],
        "team": row["team"],
        "started_at": timeparse.from_ns(row["started_at"]),
        "finished_at": timeparse.from_ns(finished) if finished is not None else None,
        "git": git,
        "custom_tags": json.loads(row["custom_tags"]),
    }


def deployment_from_row(row: Mapping[str, Any]) -> Deployment:
    """Stored rows were validated on the way in; they are not validated again."""
    return Deployment.model_construct(service=row["service"], **_common_fields(row))


def incident_from_row(row: Mapping[str, Any], services: list[str]) -> Incident:
    """Stored rows were validated on the way in; they are not validated again."""
    return Incident.model_construct(
        services=services,
        name=row["name"],
        severity=row["severity"],
        deployment_id=row["deployment_id"],
        **_common_fields(row),
    )
