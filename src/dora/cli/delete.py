"""``dora deployment delete`` and ``dora incident delete``: remove recorded events, from
the store and, when they were sent there, from Datadog."""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from dora.cli import _common as opt
from dora.cli._runtime import shows_progress, status
from dora.config import Settings
from dora.errors import UsageError

if TYPE_CHECKING:
    from dora.backends.datadog import DatadogBackend
    from dora.events import Event
    from dora.store import Store

Backend = Annotated[
    str | None,
    typer.Option(
        "--backend",
        metavar="local|datadog",
        help="With datadog, delete on Datadog now those it has; else 'dora push' does "
        "(env DORA_BACKEND; default local).",
        show_default=False,
    ),
]
Ids = Annotated[
    list[str],
    typer.Argument(
        metavar="ID",
        help="The events' ids, or prefixes that each match only one.",
        show_default=False,
    ),
]
Yes = Annotated[
    bool,
    typer.Option("--yes", "-y", help="Delete without asking (required when not on a terminal)."),
]


def deployment(
    ids: Ids,
    yes: Yes = False,
    backend: Backend = None,
    db: opt.Db = None,
    verbose: opt.Verbose = False,
) -> None:
    """Delete recorded deployments: a mistake, or a test, that no report should count.

    The commits a deleted deployment shipped go to the next deployment of its service and
    env (which shipped them, since the deleted one never happened), its marks and change
    failures go with it, and the incidents linked to it are linked again. Nothing is
    deleted if any ID is not found. A deployment that was sent to Datadog is deleted there
    too (DELETE /api/v2/dora/deployment/ID, which needs DD_APP_KEY): at once with the
    datadog backend, else by the next 'dora push'.

    To correct a field instead, record the deployment again with the same --id: 'dora
    deployment show ID' prints the command.

    Examples:

        dora deployment delete 01JDQ3ZK5R8W
        dora deployment delete 01JDQ3ZK 01JDQ4A2 --yes
        dora deployment delete 01JDQ3ZK --backend datadog
    """
    _delete("deployment", ids, yes=yes, backend=backend, db=db)


def incident(
    ids: Ids,
    yes: Yes = False,
    backend: Backend = None,
    db: opt.Db = None,
    verbose: opt.Verbose = False,
) -> None:
    """Delete recorded incidents: a false alarm, or a test, that no report should count.

    Nothing is deleted if any ID is not found. An incident that was sent to Datadog is
    deleted there too (DELETE /api/v2/dora/failure/ID, which needs DD_APP_KEY): at once
    with the datadog backend, else by the next 'dora push'.

    To correct a field instead, record the incident again with the same --id: 'dora
    incident show ID' prints the command.

    Examples:

        dora incident delete 01JDQ3ZK5R8W
        dora incident delete 01JDQ3ZK 01JDQ4A2 --yes
        dora incident delete 01JDQ3ZK --backend datadog
    """
    _delete("incident", ids, yes=yes, backend=backend, db=db)


def _delete(kind: str, refs: list[str], *, yes: bool, backend: str | None, db: str | None) -> None:
    settings = Settings({"db": db, "backend": backend})
    if not yes and not _interactive():
        raise UsageError("--yes: required when not on a terminal (nothing was deleted)")
    _, sender = opt.prepare(settings, dry_run=False)
    with contextlib.ExitStack() as stack:
        if sender is not None:
            stack.enter_context(sender)
            _need_keys(sender)
        _delete_in(kind, refs, yes=yes, settings=settings, sender=sender)


def _delete_in(
    kind: str, refs: list[str], *, yes: bool, settings: Settings, sender: DatadogBackend | None
) -> None:
    from dora.store import open_store

    with open_store(settings.get("db") or "", create=False) as store:
        find = store.find_deployment if kind == "deployment" else store.find_incident
        found: dict[str, Event] = {}
        with opt.naming_fields({"id": "ID"}):
            for ref in refs:
                event = find(ref)
                found.setdefault(event.id, event)
        if not yes and not _confirm(kind, list(found.values())):
            status("Nothing was deleted.")
            raise typer.Exit(1)
        deleted = store.delete(kind, list(found))
        for event_id in found:
            if event_id in deleted.ids:
                status(f"Deleted {kind} {_summary(found[event_id])} from {store.location}")
            else:
                status(f"{kind.capitalize()} {event_id} was deleted meanwhile by another process")
        if deleted.queued:
            _deliver(store, kind, deleted.queued, sender)


def _interactive() -> bool:
    """Whether a person can answer: a terminal on both sides, not in CI (some CI services
    give their jobs a terminal, with no one at it)."""
    return sys.stdin.isatty() and shows_progress()


def _confirm(kind: str, events: list[Event]) -> bool:
    """Ask on the terminal; anything but y or yes is no."""
    for event in events:
        sys.stderr.write(f"  {kind} {_summary(event)}\n")
    count = f"these {len(events)} {kind}s" if len(events) > 1 else f"this {kind}"
    sys.stderr.write(f"Delete {count}? [y/N] ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        raise
    return answer.strip().lower() in ("y", "yes")


def _summary(event: Event) -> str:
    """``ID (api, env prod, finished 2026-11-24T09:30:00Z)``."""
    from dora import timeparse
    from dora.events import Deployment, Incident

    if isinstance(event, Deployment):
        where = opt.describe(event.service, event.env)
        return f"{event.id} ({where}, finished {timeparse.format_iso(event.finished_at)})"
    assert isinstance(event, Incident)  # noqa: S101 - the two kinds there are
    named = [f"'{event.name}'"] if event.name else []
    where = opt.describe(", ".join(event.services) or event.team, event.env)
    started = f"started {timeparse.format_iso(event.started_at)}"
    return f"{event.id} ({', '.join([*named, where, started])})"


def _need_keys(sender: DatadogBackend) -> None:
    """Deleting on Datadog needs both keys: said before anything is deleted."""
    from dora.backends.datadog import NO_APP_KEY, NO_KEY

    if not sender.has_key:
        raise UsageError(f"{NO_KEY}: the datadog backend needs one to delete")
    if not sender.has_app_key:
        raise UsageError(f"{NO_APP_KEY}: Datadog needs one to delete events")


def _deliver(store: Store, kind: str, ids: list[str], sender: DatadogBackend | None) -> None:
    """Send the deletions queued for events Datadog has, or say that 'dora push' will."""
    from dora.events import Deletion

    if sender is None:
        some = f"{len(ids)} deletion{'s' * (len(ids) != 1)}"
        status(
            f"{some} for Datadog, which has the {kind}{'s' * (len(ids) != 1)}, "
            f"wait{'s' * (len(ids) == 1)} in {store.location}: 'dora push' sends "
            f"{'them' if len(ids) != 1 else 'it'} (or delete with --backend datadog)"
        )
        return
    for n, event_id in enumerate(ids):
        deletion = Deletion.of_event(kind, event_id)
        left = len(ids) - n
        kept = (
            f"{left} deletion{'s' * (left != 1)} for Datadog kept in {store.location}; "
            f"'dora push' will send {'them' if left != 1 else 'it'}"
        )
        code = opt.deliver_or_keep(store, sender, deletion, kept)
        if code is None:
            status(f"A 'dora push' running now is deleting {kind} {event_id} on Datadog.")
        elif code == 404:
            status(f"Datadog has no {kind} {event_id}: nothing to delete there (404)")
        else:
            status(f"Deleted {kind} {event_id} on Datadog ({code})")
